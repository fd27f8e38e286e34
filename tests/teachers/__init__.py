"""Tests of ``s2f.teachers``."""
