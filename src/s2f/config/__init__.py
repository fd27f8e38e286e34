"""Saved configurations: components that record how they were built, and the schema a saved one is held to.

- :mod:`s2f.config.components`: encoders, teachers and decoders record their constructor arguments
  (``RecordsConfig``), and :func:`~s2f.config.components.build_component` rebuilds one from its record,
  importing classes only from trusted packages.
- :mod:`s2f.config.schema`: every argument a saved model folder's ``config.json`` may set, with its type
  and bounds; the reader that refuses anything else with one line naming the key.
- :mod:`s2f.config.rules`: the kinds of value (integers, choices, text, weights files...) the schema is
  written in.
"""
