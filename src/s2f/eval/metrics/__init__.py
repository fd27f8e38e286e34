"""The evaluation's numbers as pure functions on tensors and arrays: similarity, retrieval, consistency,
identity-mean galleries, 1:2 matching, the identity score, craniofacial and demographic agreement, the
attribute-only baseline, label groups and the own-voice report.

Nothing here imports :mod:`s2f.eval.report`, a model, Lightning, or reads a file (the shard reading the
attribute-only baseline needs is :func:`s2f.eval.data.read_labelled_embeddings`), so each function can be
used and tested on its own; ``tests/package/test_layout.py`` holds the room to it.
"""
