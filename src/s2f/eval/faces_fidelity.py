"""How well the decoded faces show their person: re-embedded by the teacher, do they find their own face?

The voice -> face pipeline has two stages, and a poor face from a voice can be either's fault. Faces
decoded from the *true* teacher embedding (F2F) isolate the decoder: when the teacher, shown the
F2F face, retrieves the speaker's own gallery face, the decoder draws that person; when it does
not, no voice encoder can make the S2F face recognisable. The same test on faces decoded from the
voice (S2F) says how recognisable the faces a user sees are.

Protocol: each decoded face is embedded by the model's teacher (the network whose space the decoder
reads) and used as a query against the same gallery as the voice retrieval (one true face
embedding per held-out speaker); R@K by cosine with the exact chance level K / gallery size. A
gallery face is the teacher embedding of one clip, so the F2F face decoded from that very clip would
query its own source: those queries are left out (``exclude``), and F2F queries only the speakers'
other clips. Faces from voices keep every clip, as the voice retrieval does.

Example:
    >>> import torch
    >>> gallery = torch.eye(3)
    >>> faces = torch.cat([gallery, torch.tensor([[0.0, 0.0, 1.0]])])  # clip 3 of speaker "a" drawn as "c"
    >>> found = identity_retrieval({}, None, list("abca"), gallery, list("abc"), embedded={"f2f": faces},
    ...                            exclude={"f2f": [0, 1, 2]})
    >>> found["f2f"]["queries"], found["f2f"]["R@1"]
    (1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import S2FError
from .metrics.retrieval import recall_at_k

__all__ = ["FIDELITY_KS", "identity_retrieval", "reembed_faces", "teacher_embeddings"]

FIDELITY_KS = (1, 5, 10)


def reembed_faces(faces: Sequence[np.ndarray] | np.ndarray, teacher: Any, batch_size: int = 64) -> torch.Tensor:
    """The teacher's embeddings [N, D] of face images (RGB uint8 [H, W, 3])."""
    embeddings = []
    for start in range(0, len(faces), batch_size):
        chunk = np.stack([np.asarray(face) for face in faces[start : start + batch_size]])
        images = torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous()
        embeddings.append(teacher.embed_images(images).float().cpu())
    return torch.cat(embeddings)


def teacher_embeddings(
    faces: dict[str, Any], teacher_name: str | None, *, teacher: Any = None
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Each set of decoded faces embedded again by the teacher, or ``(None, reason)`` when it cannot be built here
    (e.g. VGG-Face without a local weights file)."""
    if teacher is None:
        from ..teachers.by_name import build_teacher

        if not teacher_name:
            return None, "the model does not say which teacher its embeddings come from"
        try:
            teacher = build_teacher(teacher_name)
        except (S2FError, TypeError, ValueError) as exc:
            return None, f"teacher {teacher_name!r} cannot be built without more arguments ({exc})"
    return {name: reembed_faces(images, teacher) for name, images in faces.items()}, ""


def identity_retrieval(
    faces: dict[str, Any],
    teacher_name: str | None,
    speakers: Sequence[str],
    gallery: torch.Tensor,
    gallery_speakers: Sequence[str],
    *,
    teacher: Any = None,
    embedded: dict[str, torch.Tensor] | None = None,
    exclude: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """R@K of decoded faces, re-embedded by the teacher, against the gallery, for each set of faces.

    Args:
        faces: Decoded faces by name (e.g. ``{"f2f": [...], "s2f": [...]}``), one per query clip.
        teacher_name: The registered teacher the model's embeddings come from.
        speakers: The speaker of each clip.
        gallery: One true face embedding per speaker.
        gallery_speakers: The speaker of each gallery face.
        teacher: The teacher itself, when already built (otherwise built from its name).
        embedded: The faces already re-embedded by the teacher (:func:`teacher_embeddings`), by name.
        exclude: Query indices to leave out, by name: the gallery clips for the faces decoded from the true
            embeddings, whose gallery face is the very embedding they were decoded from.

    Returns:
        ``{name: recall dict}``, or ``{"skipped": reason}`` when the teacher cannot be built here.
    """
    if embedded is None:
        embedded, reason = teacher_embeddings(faces, teacher_name, teacher=teacher)
        if embedded is None:
            return {"skipped": reason}
    found = {}
    for name, queries in embedded.items():
        keep = torch.ones(len(queries), dtype=torch.bool)
        keep[list((exclude or {}).get(name, ()))] = False
        kept_speakers = [speaker for speaker, kept in zip(speakers, keep.tolist(), strict=True) if kept]
        found[name] = recall_at_k(queries[keep], kept_speakers, gallery, gallery_speakers, ks=FIDELITY_KS)
    return found
