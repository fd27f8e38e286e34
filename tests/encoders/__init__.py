"""Tests of ``s2f.encoders``."""
