"""Attribute-only baseline: the face embedding a model would predict if it knew only the speaker's labels.

Does a voice model know more than gender and age? A predictor that sees only the labels a data set
records answers it: for each held-out voice, the mean training embedding of the speakers with the same
labels (speakers weigh equally, whatever their number of clips). Two variants: ``gender``, and
``gender_age`` (gender and age band) where the metadata records ages. A held-out clip whose labels no
training speaker shares gets the mean of all training speakers (counted as ``fallback``). The
Make-Zenerator project trained such an attribute-only control; this one needs no training.

A model that does not beat this baseline on retrieval and matching is only reading demographics from
the voice; the report says so in words.

Example:
    >>> import torch
    >>> train = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    >>> labels = [{"gender": "m"}, {"gender": "m"}, {"gender": "f"}]
    >>> found = attribute_predictions(train, ["a", "b", "c"], labels, [{"gender": "f"}, {"gender": "male"}])
    >>> found["gender"]["predictions"].tolist(), found["gender"]["fallback"]
    ([[0.0, 2.0], [2.0, 0.0]], 0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .demographics import age_group
from .galleries import identity_means

__all__ = ["ATTRIBUTE_VARIANTS", "age_band", "attribute_predictions", "gender_label"]

_GENDERS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}


def gender_label(metadata: dict[str, Any]) -> str | None:
    """``"female"`` / ``"male"`` from a clip's metadata (VoxCeleb's ``m`` / ``f`` included), or None.

    Example:
        >>> gender_label({"gender": "F"}), gender_label({"gender": "unknown"}), gender_label({})
        ('female', None, None)
    """
    return _GENDERS.get(str(metadata.get("gender", "")).strip().lower())


def age_band(metadata: dict[str, Any]) -> str | None:
    """The decade band of a recorded ``age`` (years), or a recorded ``age_group`` / ``age_band``; None without.

    Example:
        >>> age_band({"age": 34}), age_band({"age_group": "60+"}), age_band({"gender": "m"})
        ('30-39', '60+', None)
    """
    age = metadata.get("age")
    if isinstance(age, int | float) and not isinstance(age, bool) and np.isfinite(age):
        return age_group(float(age))
    band = metadata.get("age_group", metadata.get("age_band"))
    return str(band) if band not in (None, "") else None


def _gender_and_age(metadata: dict[str, Any]) -> str | None:
    gender, band = gender_label(metadata), age_band(metadata)
    return None if gender is None or band is None else f"{gender}, {band}"


ATTRIBUTE_VARIANTS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "gender": gender_label,
    "gender_age": _gender_and_age,
}
"""Each variant's label of a clip (None: not recorded)."""


def attribute_predictions(
    train_embeddings: torch.Tensor,
    train_speakers: Sequence[str],
    train_metadata: Sequence[dict[str, Any]],
    held_metadata: Sequence[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Each variant's prediction [N, D] for the held-out clips, from the training speakers' mean embeddings.

    Returns:
        ``{variant: {"predictions", "groups": {label: training speakers}, "fallback": clips}}`` for each
        variant some training speaker and some held-out clip have labels for; ``{}`` when none has.
    """
    means, speakers = identity_means(train_embeddings, train_speakers)
    first_metadata = dict(zip(train_speakers, train_metadata, strict=True))
    overall = means.double().mean(0)
    found: dict[str, dict[str, Any]] = {}
    for variant, label_of in ATTRIBUTE_VARIANTS.items():
        members: dict[str, list[int]] = defaultdict(list)
        for row, speaker in enumerate(speakers):
            label = label_of(first_metadata[speaker])
            if label is not None:
                members[label].append(row)
        held_labels = [label_of(m) for m in held_metadata]
        if not members or all(label is None for label in held_labels):
            continue
        group_means = {label: means[rows].double().mean(0) for label, rows in members.items()}
        chosen = [group_means.get(label, overall) if label is not None else overall for label in held_labels]
        found[variant] = {
            "predictions": torch.stack(chosen).float(),
            "groups": {label: len(rows) for label, rows in sorted(members.items())},
            "fallback": sum(label not in group_means for label in held_labels),
        }
    return found
