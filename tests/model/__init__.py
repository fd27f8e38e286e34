"""Tests of ``s2f.model``."""
