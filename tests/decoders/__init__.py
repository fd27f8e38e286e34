"""Tests of ``s2f.decoders``."""
