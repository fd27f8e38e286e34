"""Fault injection: kills, full disks, hostile and tampered folders, fuzzing, corrupt chunks, bad numbers."""
