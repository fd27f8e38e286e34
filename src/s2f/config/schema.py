"""Moved to s2f.model.schema.

This path is removed in 0.3.0 (s2f._compat.moved).
"""

from s2f._compat.moved import redirect

redirect(__name__)
