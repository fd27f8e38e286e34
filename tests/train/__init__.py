"""Tests of ``s2f.train``."""
