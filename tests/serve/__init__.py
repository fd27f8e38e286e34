"""Tests of ``s2f.serve``."""
