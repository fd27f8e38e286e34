"""Kernel ridge on the true voice parameters: a reference scored on exactly the demo model's protocol.

In this world each speaker's voice is synthesised from a few physical parameters
(:class:`~s2f.synth.voice.VoiceParameters`, written to ``identities.csv``). A regressor that is *given*
those parameters, rather than having to hear them, says how much of the teacher's face embedding
they predict with a simple smooth map. It is a reference, not a bound: a voice encoder hears the
same parameters through the synthesis and may model their link to the face better (or worse) than
a kernel ridge fitted on a few hundred identities does.

It is scored exactly as :func:`s2f.eval.evaluate` scores the model, with eval's own functions:

1. data: the shards' ``train`` split fits, ``val`` chooses, ``test`` is reported (splits by
   identity, as the model's); features are the voice parameters (``log f0``), standardised on the
   train identities; targets are the train identities' mean teacher embeddings, centred on the
   train split's mean (as the model's ``center_embeddings``);
2. kernel ridge regression with an RBF kernel; its width (a multiple of the median distance
   between train identities) and ridge ``lambda`` are chosen by R@10 (R@5 when val holds fewer than
   10 identities; then R@1) on the val split, scored as below; the test split is never read for a
   choice (:func:`~s2f.eval.protocol.refuse_reported_split`);
3. per clip: every test clip is a query carrying its speaker's prediction; the gallery is one face
   per test speaker, the teacher embedding of its clip with the smallest clip id
   (:func:`~s2f.eval.metrics.retrieval.choose_gallery`); a tie counts against the query
   (:func:`~s2f.eval.metrics.retrieval.recall_at_k`); chance is K / gallery size;
4. the angle between each clip's prediction and its true embedding, beside that of the train
   split's mean embedding (the mean face), as the model's headline.

Example:
    >>> report = voice_parameter_reference("shards/", "world/identities.csv")      # doctest: +SKIP
    >>> print(report.table())                                                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from s2f.errors import S2FError

__all__ = ["REFERENCE_NAME", "ReferenceReport", "voice_parameter_reference"]

REFERENCE_NAME = "kernel ridge on the true voice parameters"
WIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Kernel widths tried, as multiples of the median distance between train identities' parameters."""
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)
"""Ridge penalties tried."""
KS = (1, 5, 10)


@dataclass(frozen=True)
class ReferenceReport:
    """The reference's figures on the test split and how its settings were chosen.

    Attributes:
        identities: Identities per split (``train``, ``val``, ``test``).
        features: The voice parameters used.
        width: Chosen kernel width (a multiple of the median distance).
        ridge: Chosen ridge penalty.
        val_recall: R@K on val of the chosen settings.
        recall: R@K on test, per clip, ties against.
        chance: K / gallery size on test.
        angle_deg: Mean angle between each test clip's prediction and its true embedding.
        mean_face_angle_deg: The same for the train split's mean embedding.
        gallery_size: Test speakers in the gallery.
        queries: Test clips.
    """

    identities: dict[str, int]
    features: tuple[str, ...]
    width: float
    ridge: float
    val_recall: dict[int, float]
    recall: dict[int, float]
    chance: dict[int, float]
    angle_deg: float
    mean_face_angle_deg: float
    gallery_size: int
    queries: int
    tried: list[dict[str, Any]] = field(default_factory=list)

    @property
    def angle_below_mean_face_deg(self) -> float:
        return self.mean_face_angle_deg - self.angle_deg

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, under the headline's key names where they mean the same."""
        block: dict[str, Any] = {f"recall_at_{k}": r for k, r in self.recall.items()}
        block |= {f"chance_at_{k}": c for k, c in self.chance.items()}
        block |= {
            "angle_deg": self.angle_deg,
            "mean_face_angle_deg": self.mean_face_angle_deg,
            "angle_below_mean_face_deg": self.angle_below_mean_face_deg,
            "gallery_size": self.gallery_size,
            "queries": self.queries,
            "width": self.width,
            "ridge": self.ridge,
            "val_recall": {str(k): r for k, r in self.val_recall.items()},
            "identities": self.identities,
        }
        return block

    def table(self) -> str:
        """A plain-text table of the results."""
        ks = sorted(self.recall)
        head = "".join(f"{'R@' + str(k):>8}" for k in ks)
        lines = [
            f"{REFERENCE_NAME}: fit on {self.identities['train']} train identities, settings chosen on "
            f"{self.identities['val']} val ones (width {self.width:g} x median, lambda {self.ridge:g}), "
            f"scored per clip on {self.queries} clips of {self.gallery_size} test identities",
            f"  {'predictor':<30}{head}{'angle':>9}",
            f"  {'true voice parameters':<30}{''.join(f'{self.recall[k]:>8.1%}' for k in ks)}{self.angle_deg:>9.2f}",
            f"  {'chance / mean face':<30}{''.join(f'{self.chance[k]:>8.1%}' for k in ks)}"
            f"{self.mean_face_angle_deg:>9.2f}",
        ]
        return "\n".join(lines)


def _read_parameters(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Each identity's voice parameters (``log f0``), and their names."""
    from s2f.synth.voice import VoiceParameters

    if not os.path.isfile(path):
        raise S2FError(f"{path}: identities CSV does not exist; give the identities.csv that s2f synth wrote")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = tuple(f.name for f in dataclasses.fields(VoiceParameters) if rows and f.name in rows[0])
    if not rows or "f0_hz" not in names or "speaker_id" not in rows[0]:
        raise S2FError(f"{path}: not an s2f synth identities.csv (no speaker_id and voice parameter columns)")
    features = {}
    for row in rows:
        values = np.array([float(row[name]) for name in names])
        values[names.index("f0_hz")] = np.log(values[names.index("f0_hz")])
        features[row["speaker_id"]] = values
    return features, names


def _rbf(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-distances / (2.0 * width**2))


@dataclass
class _Split:
    speakers: list[str]
    embeddings: torch.Tensor
    gallery: torch.Tensor
    gallery_speakers: list[str]


def _split(shards: str | os.PathLike[str], name: str, parameters: dict[str, np.ndarray]) -> _Split:
    """A split as :func:`s2f.eval.evaluate` reads it: clips by clip id, the same gallery."""
    from s2f.eval.data import load_held_out
    from s2f.eval.metrics.retrieval import choose_gallery

    held = load_held_out(shards, name)
    unknown = sorted({s for s in held.speaker_ids if s not in parameters})
    if unknown:
        raise S2FError(
            f"{shards}: split {name!r} holds speakers the identities CSV does not list ({', '.join(unknown[:3])}); "
            "give the identities.csv of the world these shards were prepared from"
        )
    if len(set(held.speaker_ids)) < 2:
        raise S2FError(
            f"{shards}: split {name!r} holds {len(set(held.speaker_ids))} identity; the reference needs at least 2 "
            "in each of train, val and test (synthesise more identities)"
        )
    gallery_of = choose_gallery(held.clip_ids, held.speaker_ids)
    return _Split(held.speaker_ids, held.embeddings, held.embeddings[list(gallery_of.values())], list(gallery_of))


def _recall(predicted: torch.Tensor, split: _Split) -> dict[int, float]:
    from s2f.eval.metrics.retrieval import recall_at_k

    found = recall_at_k(predicted, split.speakers, split.gallery, split.gallery_speakers, metric="cos", ks=KS)
    return {k: found[f"R@{k}"] for k in KS if f"R@{k}" in found}


def voice_parameter_reference(
    shards: str | os.PathLike[str],
    identities_csv: str | os.PathLike[str],
    *,
    selection_split: str = "val",
    reported_split: str = "test",
) -> ReferenceReport:
    """Kernel ridge from the true voice parameters to the face embedding, scored on the model's protocol.

    Args:
        shards: Shard root prepared from the world, with ``train``, ``selection_split`` and ``reported_split``.
        identities_csv: The world's :attr:`~s2f.synth.SynthWorld.identities_csv`.
        selection_split: The split the kernel width and ridge are chosen on.
        reported_split: The split reported (never read for a choice).

    Raises:
        S2FError: The CSV is not a world's, a split is missing, or it holds speakers the CSV does not list;
            ``selection_split`` is ``reported_split``.
    """
    from s2f.eval.protocol import refuse_reported_split
    from s2f.model.angles import angles_deg

    refuse_reported_split(selection_split, reported_split, "choose the reference's settings")
    parameters, names = _read_parameters(identities_csv)
    train, val, test = (_split(shards, name, parameters) for name in ("train", selection_split, reported_split))
    train_ids = sorted(set(train.speakers))
    x_train = np.stack([parameters[s] for s in train_ids])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    x_train = (x_train - mean) / std
    center = train.embeddings.double().mean(0).numpy()
    rows = {s: [i for i, t in enumerate(train.speakers) if t == s] for s in train_ids}
    y_train = np.stack([train.embeddings[rows[s]].double().mean(0).numpy() for s in train_ids]) - center
    pairwise = np.sqrt(((x_train[:, None] - x_train[None]) ** 2).sum(-1))
    median = float(np.median(pairwise[pairwise > 0])) if (pairwise > 0).any() else 1.0

    def predict(split: _Split, width: float, ridge: float) -> torch.Tensor:
        alpha = np.linalg.solve(_rbf(x_train, x_train, width * median) + ridge * np.eye(len(x_train)), y_train)
        x = (np.stack([parameters[s] for s in split.speakers]) - mean) / std
        return torch.from_numpy(_rbf(x, x_train, width * median) @ alpha + center).float()

    val_recall = {(w, r): _recall(predict(val, w, r), val) for w in WIDTHS for r in LAMBDAS}

    # R@10 on val (R@5 when val holds fewer than 10 identities), then R@1; among equals the stronger ridge.
    def rank(wr: tuple[float, float]) -> tuple[float, ...]:
        found = val_recall[wr]
        return (found[max(found)], found[1], wr[1])

    width, ridge = max(val_recall, key=rank)
    predicted = predict(test, width, ridge)
    mean_face = torch.from_numpy(center).float().expand(len(test.speakers), -1)
    recall = _recall(predicted, test)
    return ReferenceReport(
        identities={"train": len(train_ids), "val": len(set(val.speakers)), "test": len(set(test.speakers))},
        features=names,
        width=width,
        ridge=ridge,
        val_recall=val_recall[width, ridge],
        recall=recall,
        chance={k: k / len(test.gallery_speakers) for k in recall},
        angle_deg=float(angles_deg(predicted, test.embeddings).mean()),
        mean_face_angle_deg=float(angles_deg(mean_face, test.embeddings).mean()),
        gallery_size=len(test.gallery_speakers),
        queries=len(test.speakers),
        tried=[{"width": w, "ridge": r, "val": found} for (w, r), found in val_recall.items()],
    )
