"""Tests of ``s2f.cli``."""
