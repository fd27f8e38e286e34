"""Tests of ``s2f.audio``."""
