"""Morphs blend the sources of one gender: a blend of a man and a woman reads as neither."""

from __future__ import annotations

import numpy as np
import pytest

from s2f.synth.face_sources import SourceBank, canonical_shape
from s2f.synth.morph import Morpher


def _bank(genders: list[float], size: int = 96) -> SourceBank:
    rng = np.random.default_rng(0)
    shape = canonical_shape(size)
    return SourceBank(
        names=[f"source{i}" for i in range(len(genders))],
        genders=np.array(genders),
        images=rng.integers(0, 255, (len(genders), size, size, 3), dtype=np.uint8),
        landmarks=np.stack([shape + rng.normal(0, 0.8, shape.shape) for _ in genders]).astype(np.float32),
        warnings=[],
    )


def test_a_morph_blends_one_gender_and_both_genders_are_drawn() -> None:
    genders = [0.0, 0.0, 0.0, 1.0, 1.0, 0.5]
    morpher = Morpher(_bank(genders))
    rng = np.random.default_rng(1)
    women = 0
    for _ in range(200):
        spec = morpher.draw(rng)
        parents = set(np.flatnonzero(spec.weights > 0).tolist())
        assert parents <= {0, 1, 2, 5} or parents <= {3, 4, 5}, parents
        assert spec.weights.sum() == pytest.approx(1.0) and (spec.weights >= 0).all()
        women += float(spec.weights @ np.array(genders)) < 0.5
    women /= 200
    assert 0.4 < women < 0.6  # even odds, 200 draws


def test_a_bank_of_one_gender_blends_every_source() -> None:
    morpher = Morpher(_bank([0.0, 0.0, 0.5]))
    rng = np.random.default_rng(2)
    used = set()
    for _ in range(100):
        used |= set(np.flatnonzero(morpher.draw(rng).weights > 0).tolist())
    assert used == {0, 1, 2}
