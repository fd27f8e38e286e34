"""Builders shared by the test modules: shard roots (:mod:`helpers.shards`), morphed real faces (:mod:`helpers.faces`),
the mp4 corpus ``s2f prepare`` is tested on (:mod:`helpers.corpus`), a quiet Lightning Trainer and ``s2f fit``
arguments (:mod:`helpers.fit`).

Test modules reach shards through the ``shard_factory`` and ``writable_shards`` fixtures in
``tests/conftest.py``, which call these builders, and the corpus through its ``prepare_corpus`` fixture.
"""
