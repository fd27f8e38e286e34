"""A synthetic but realistic audio-visual world with a known voice-face link (``s2f synth``).

Faces are morphs of real photos that ship inside PyPI packages; voices are source-filter speech
whose pitch, vocal-tract length, rate, breathiness, spectral tilt and nasality are documented
functions of the face (:mod:`s2f.synth.voice`). The world is written as real mp4 (or wav +
jpg) files in VoxCeleb's layout with its meta CSV, so ``s2f prepare`` reads it unchanged.
:func:`voice_parameter_reference` states how much of the teacher's embedding a kernel ridge on the
true voice parameters predicts, scored on the model's own protocol: a reference beside the model.

Example:
    >>> from s2f.synth import WorldSpec, synthesize_world
    >>> world = synthesize_world("worlds/demo", WorldSpec(identities=300))       # doctest: +SKIP
    >>> world.root, world.meta_csv                                               # doctest: +SKIP
"""

from __future__ import annotations

from .reference import ReferenceReport, voice_parameter_reference
from .world import IdentitySpec, SynthWorld, synthesize_world
from .world_spec import WorldSpec

__all__ = [
    "IdentitySpec",
    "ReferenceReport",
    "SynthWorld",
    "WorldSpec",
    "synthesize_world",
    "voice_parameter_reference",
]
