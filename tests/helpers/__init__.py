"""Builders shared by the test modules: shard roots (:mod:`helpers.shards`), morphed real faces (:mod:`helpers.faces`).

Test modules reach shards through the ``shard_factory`` and ``writable_shards`` fixtures in
``tests/conftest.py``, which call these builders.
"""
