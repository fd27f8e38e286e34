"""Tests of ``s2f.eval``."""
