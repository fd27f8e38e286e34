"""Old module paths kept importable for one release: the table is :mod:`s2f._compat.moved`."""
