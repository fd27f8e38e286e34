"""A synthetic but realistic audio-visual world with a known voice-face link (``s2f synth``).

Faces are morphs of real photos that ship inside PyPI packages; voices are source-filter speech
whose pitch, vocal-tract length, rate, breathiness, spectral tilt and nasality are documented
functions of the face (:mod:`s2f.synth.voice`). The world is written as real mp4 (or wav +
jpg) files in VoxCeleb's layout with its meta CSV, so ``s2f prepare`` reads it unchanged.
:func:`voice_face_ceiling` states how much of the teacher's embedding the true voice parameters
predict: the ceiling for a model that hears the voice.

Example:
    >>> from s2f.synth import synthesize_world
    >>> world = synthesize_world("worlds/demo", identities=300)                  # doctest: +SKIP
    >>> world.root, world.meta_csv                                               # doctest: +SKIP
"""

from __future__ import annotations

from .ceiling import CeilingReport, voice_face_ceiling
from .world import IdentitySpec, SynthWorld, synthesize_world

__all__ = ["CeilingReport", "IdentitySpec", "SynthWorld", "synthesize_world", "voice_face_ceiling"]
