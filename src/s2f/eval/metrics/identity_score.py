"""Identity score: an Inception-score-like figure of how distinctly a set of faces shows distinct people.

SF2F and later work report a "VGGFace score": the Inception score of generated faces computed with a
VGGFace2 ResNet-50 classifier over its 8,631 training identities (``scripts/compute_vggface_score.py``
of BAI-Yeqi/SF2F_PyTorch: softmax over the identities, 5 splits, exp of the mean KL divergence between
each face's class distribution and the split's marginal). No such classifier ships offline, so the
score here keeps the formula and changes the classifier:

- **classes**: the G held-out identities; class y is the unit mean of the embeddings of identity y's
  true faces, in the space of the network that scores (the teacher, or the independent evaluator);
- **classifier**: p(y | x) = softmax over y of cos(e(x), m_y) / T, with e(x) the face's embedding;
- **temperature** T: fitted by maximum likelihood on the true faces, as the cross-entropy training of
  an identity classifier would set it: the T (between 0.001 and 1) that maximises the mean
  log-probability of each true face's own identity, each face scored against an own-identity mean
  that leaves it out (so that no face is its own prototype); faces of identities with a single face
  take no part;
- **score**: the faces are shuffled (seeded) and cut into S splits (default 5, as SF2F); in each split,
  exp(mean over x of KL(p(y | x) || p(y))), with p(y) the split's mean of p(y | x); reported as mean
  and standard deviation over the splits.

The score runs from 1 (every face gets the same class distribution: a face that says nothing about
identity, such as one mean face for every voice) to G (each face certainly one identity, all
identities equally used). The true faces' score is the reference a model can hope to reach; values
are not comparable with published VGGFace scores, whose classifier has 8,631 classes.

Example:
    >>> import torch
    >>> noise = 0.1 * torch.randn(24, 8, generator=torch.Generator().manual_seed(0))
    >>> faces, speakers = torch.eye(8).repeat(3, 1) + noise, [f"s{i % 8}" for i in range(24)]
    >>> found = identity_scores({"true": faces, "constant": torch.ones(24, 8)}, faces, speakers, splits=2)
    >>> found["classes"], round(found["scores"]["true"]["mean"], 2), round(found["scores"]["constant"]["mean"], 6)
    (8, 6.45, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .galleries import identity_means

__all__ = [
    "IDENTITY_SCORE_DEFINITION",
    "class_probabilities",
    "fit_temperature",
    "identity_score",
    "identity_scores",
]

IDENTITY_SCORE_DEFINITION = (
    "classes = the {classes} held-out identities, each the unit mean embedding of its true faces; p(y|x) = "
    "softmax over identities of cos(e(x), m_y) / T with T = {temperature:.4f}, fitted by maximum likelihood on "
    "the true faces (each against an own-identity mean that leaves it out); score = exp(mean KL(p(y|x) || p(y))) "
    "in each of {splits} seeded splits, p(y) the split's mean, mean +/- std over the splits; 1 = no identity "
    "information, {classes} = every face certainly a distinct identity"
)


def class_probabilities(embeddings: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> torch.Tensor:
    """p(y | x) [N, G]: softmax over the prototypes of the cosine similarity divided by ``temperature``."""
    cosine = F.normalize(embeddings.double(), dim=-1) @ F.normalize(prototypes.double(), dim=-1).T
    return torch.softmax(cosine / temperature, dim=1)


def fit_temperature(
    embeddings: torch.Tensor, speakers: Sequence[str], bounds: tuple[float, float] = (1e-3, 1.0)
) -> float:
    """The temperature at which the true faces are most likely classified as their own identity, each face
    scored against prototypes that leave it out (maximum likelihood, as a classifier trained on them would be).

    Faces whose identity has no other face take no part; without any such pair the upper bound is returned.
    """
    from scipy.optimize import minimize_scalar

    prototypes, names = identity_means(embeddings, speakers)
    index = {name: i for i, name in enumerate(names)}
    own = torch.tensor([index[s] for s in speakers], dtype=torch.long)
    counts = torch.bincount(own, minlength=len(names)).double()
    usable = counts[own] > 1
    if not usable.any() or len(names) < 2:
        return bounds[1]
    unit = F.normalize(embeddings.double(), dim=-1)
    cosine = unit @ F.normalize(prototypes.double(), dim=-1).T
    # The own identity's mean without this face: (n * mean - face) / (n - 1).
    n = counts[own][:, None]
    left_out = (n * prototypes.double()[own] - embeddings.double()) / (n - 1).clamp_min(1)
    cosine[torch.arange(len(own)), own] = (unit * F.normalize(left_out, dim=-1)).sum(-1)
    cosine, own = cosine[usable], own[usable]

    def loss(log_temperature: float) -> float:
        log_p = torch.log_softmax(cosine / math.exp(log_temperature), dim=1)
        return -float(log_p.gather(1, own[:, None]).mean())

    found = minimize_scalar(loss, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded")
    return float(math.exp(found.x))


def identity_score(probabilities: torch.Tensor, *, splits: int = 5, seed: int = 0) -> dict[str, float]:
    """exp(mean KL(p(y|x) || p(y))) in each of ``splits`` seeded splits of the rows; mean and std over splits."""
    order = np.random.default_rng(seed).permutation(len(probabilities))
    scores = []
    for part in np.array_split(order, max(1, min(splits, len(order)))):
        p = probabilities[torch.from_numpy(part)].clamp_min(1e-300)
        marginal = p.mean(0, keepdim=True)
        scores.append(math.exp(float((p * (p.log() - marginal.log())).sum(1).mean())))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "splits": len(scores)}


def identity_scores(
    embedded: Mapping[str, torch.Tensor],
    true_embeddings: torch.Tensor,
    speakers: Sequence[str],
    *,
    splits: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The identity score of each set of embeddings, with classes and temperature from the true faces.

    Args:
        embedded: Embeddings by name (e.g. ``{"true": ..., "f2f": ..., "s2f": ...}``), all in one space.
        true_embeddings: The true faces' embeddings [N, D] in that space.
        speakers: The speaker of each true face.
        splits: Splits per score.
        seed: Seed of the shuffle before splitting.

    Returns:
        ``{"classes", "temperature", "splits", "definition", "scores": {name: {"mean", "std"}}}``.
    """
    prototypes, names = identity_means(true_embeddings, speakers)
    temperature = fit_temperature(true_embeddings, speakers)
    return {
        "classes": len(names),
        "temperature": temperature,
        "splits": splits,
        "definition": IDENTITY_SCORE_DEFINITION.format(classes=len(names), temperature=temperature, splits=splits),
        "scores": {
            name: identity_score(class_probabilities(values, prototypes, temperature), splits=splits, seed=seed)
            for name, values in embedded.items()
        },
    }
