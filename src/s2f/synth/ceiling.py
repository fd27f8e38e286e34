"""How much of the teacher's face embedding the true voice parameters predict: the world's stated ceiling.

A voice encoder can at best recover what the voice carries. In this world the voice is a function
of eight parameters (:class:`~s2f.synth.voice.VoiceParameters`), so a regressor that is *given*
those parameters, rather than having to hear them, bounds what any encoder can do here. The
protocol, on shards prepared from the world:

1. the target of each identity is the mean of its clips' teacher embeddings, L2-normalised;
2. features are the eight parameters (``log f0``), standardised on the dev identities;
3. kernel ridge regression (RBF kernel, median-distance bandwidth, ``lambda = 0.1``) and linear
   ridge (``lambda = 1``) are fitted on the dev identities (the train and val splits);
4. on the test identities, each predicted embedding queries a gallery holding one embedding per
   test identity (its first clip's, as the demo's gallery does); R@K is the share whose own
   identity ranks in the top K by cosine similarity; chance is ``K / gallery size``.

Example:
    >>> report = voice_face_ceiling("shards/", "world/identities.csv")           # doctest: +SKIP
    >>> print(report.table())                                                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from s2f.errors import S2FError

__all__ = ["FEATURES", "CeilingReport", "voice_face_ceiling"]

FEATURES = ("f0_hz", "vtl_cm", "rate_hz", "breathiness", "open_quotient", "nasality", "pitch_range_st", "brightness_db")


@dataclass(frozen=True)
class CeilingReport:
    """Retrieval of held-out identities from their true voice parameters.

    Attributes:
        train_identities: Dev identities the regressors were fitted on.
        test_identities: Held-out identities (the gallery size).
        recall: ``{"kernel": {1: r1, 10: r10}, "linear": {...}}`` in [0, 1].
        chance: ``{1: 1/n, 10: 10/n}``.
        cosine: Mean cosine between predicted and true test embeddings, per regressor.
        mean_face_cosine: The same for the dev identities' mean embedding (a baseline that ignores the voice).
    """

    train_identities: int
    test_identities: int
    recall: dict[str, dict[int, float]]
    chance: dict[int, float]
    cosine: dict[str, float]
    mean_face_cosine: float

    def table(self) -> str:
        """A plain-text table of the results."""
        ks = sorted(self.chance)
        head = "".join(f"{'R@' + str(k):>8}" for k in ks)
        lines = [
            f"voice -> face ceiling: fit on {self.train_identities} dev identities, "
            f"tested on {self.test_identities} held-out ones",
            f"  {'predictor':<28}{head}{'cosine':>9}",
        ]
        for name, recall in self.recall.items():
            values = "".join(f"{recall[k]:>8.1%}" for k in ks)
            lines.append(f"  {'true voice params, ' + name:<28}{values}{self.cosine[name]:>9.3f}")
        chance = "".join(f"{self.chance[k]:>8.1%}" for k in ks)
        lines.append(f"  {'chance / mean face':<28}{chance}{self.mean_face_cosine:>9.3f}")
        return "\n".join(lines)


def _read_parameters(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise S2FError(f"{path}: identities CSV does not exist; give the identities.csv that s2f synth wrote")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [name for name in FEATURES if rows and name not in rows[0]]
    if not rows or missing:
        raise S2FError(f"{path}: not an s2f synth identities.csv (missing columns {missing or list(FEATURES)})")
    features = {}
    for row in rows:
        values = np.array([float(row[name]) for name in FEATURES])
        values[0] = np.log(values[0])
        features[row["speaker_id"]] = values
    return features


def _embeddings(shards: str | os.PathLike[str]) -> dict[str, dict[str, list[np.ndarray]]]:
    """Clip embeddings by split group (``dev``, ``test``) and speaker."""
    from s2f.shards import iter_records, read_manifest

    manifest = read_manifest(shards)
    grouped: dict[str, dict[str, list[np.ndarray]]] = {"dev": {}, "test": {}}
    for split in manifest.splits:
        group = "test" if split == "test" else "dev"
        for record in iter_records(shards, split):
            grouped[group].setdefault(record.speaker_id, []).append(record.embedding.astype(np.float64))
    return grouped


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _rbf(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-distances / (2.0 * width**2))


def _recall(predicted: np.ndarray, gallery: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    scores = _normalise(predicted) @ _normalise(gallery).T
    own = np.diag(scores)
    rank = (scores > own[:, None]).sum(axis=1)  # identities scoring strictly higher than the right one
    return {k: float((rank < k).mean()) for k in ks}


def voice_face_ceiling(
    shards: str | os.PathLike[str], identities_csv: str | os.PathLike[str], ks: tuple[int, ...] = (1, 10)
) -> CeilingReport:
    """Retrieval of held-out faces from the *true* voice parameters: the best a voice encoder can do here.

    Args:
        shards: Shard root prepared from the world (``s2f prepare --voxceleb``).
        identities_csv: The world's :attr:`~s2f.synth.SynthWorld.identities_csv`.
        ks: The K of R@K.

    Raises:
        S2FError: The CSV is not a world's, or the shards lack dev or test identities it lists.
    """
    parameters = _read_parameters(identities_csv)
    grouped = _embeddings(shards)
    names = {group: sorted(s for s in speakers if s in parameters) for group, speakers in grouped.items()}
    if len(names["dev"]) < 2 or len(names["test"]) < 2:
        raise S2FError(
            f"{shards}: needs at least 2 dev and 2 test identities listed in {identities_csv}, "
            f"found {len(names['dev'])} and {len(names['test'])}; prepare the world's shards with its meta CSV"
        )
    x_train = np.stack([parameters[s] for s in names["dev"]])
    x_test = np.stack([parameters[s] for s in names["test"]])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = _normalise(np.stack([np.mean(grouped["dev"][s], axis=0) for s in names["dev"]]))
    y_test = _normalise(np.stack([np.mean(grouped["test"][s], axis=0) for s in names["test"]]))
    gallery = np.stack([grouped["test"][s][0] for s in names["test"]])
    center = y_train.mean(0)

    predictions = {}
    features = np.c_[x_train, np.ones(len(x_train))]
    weights = np.linalg.solve(features.T @ features + 1.0 * np.eye(features.shape[1]), features.T @ (y_train - center))
    predictions["linear"] = np.c_[x_test, np.ones(len(x_test))] @ weights + center
    pairwise = np.sqrt(((x_train[:, None] - x_train[None]) ** 2).sum(-1))
    width = float(np.median(pairwise[pairwise > 0]))
    kernel = _rbf(x_train, x_train, width)
    alpha = np.linalg.solve(kernel + 0.1 * np.eye(len(kernel)), y_train - center)
    predictions["kernel"] = _rbf(x_test, x_train, width) @ alpha + center

    return CeilingReport(
        train_identities=len(names["dev"]),
        test_identities=len(names["test"]),
        recall={name: _recall(p, gallery, ks) for name, p in predictions.items()},
        chance={k: min(1.0, k / len(names["test"])) for k in ks},
        cosine={name: float((_normalise(p) * y_test).sum(-1).mean()) for name, p in predictions.items()},
        mean_face_cosine=float((_normalise(center[None]) * y_test).sum(-1).mean()),
    )
