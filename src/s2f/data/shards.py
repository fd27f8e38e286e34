"""Moved to s2f.shards.format / s2f.shards.codec / s2f.shards.reader / s2f.shards.writer.

This path is removed in 0.3.0 (s2f._compat.moved).
"""

from s2f._compat.moved import redirect

redirect(__name__)
