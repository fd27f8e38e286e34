"""Tests of ``s2f.demo``."""
