"""Tests of ``s2f.shards``."""
