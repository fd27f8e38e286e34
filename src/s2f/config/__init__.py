"""What a saved component is made of: the record of how it was built, the kinds of value a record may
hold, and the safe reading of its weights. The component families stand on this room, and the schema
that holds a saved model to these rules (:mod:`s2f.model.schema`) stands on the families.

- :mod:`s2f.config.components`: encoders, teachers and decoders record their constructor arguments
  (``RecordsConfig``), and :func:`~s2f.config.components.build_component` rebuilds one from its record,
  importing classes only from trusted packages.
- :mod:`s2f.config.rules`: the kinds of value (integers, choices, text, weights files...) the schema of
  :mod:`s2f.model.schema` is written in.
- :mod:`s2f.config.weights`: weights files read without unpickling code and held to the module they are
  for (the component families read theirs through it, so it stands below them).
"""
