"""Tests of ``s2f.synth``."""
