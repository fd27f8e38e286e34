"""Tests of ``s2f.vision``."""
