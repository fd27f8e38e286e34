"""Tests of ``s2f.prepare``."""
