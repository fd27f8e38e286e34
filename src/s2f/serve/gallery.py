"""The faces a prediction is compared with: one face per speaker of a shard split, held in memory.

The gallery follows ``s2f eval``'s retrieval protocol: one face per speaker (the teacher embedding
of the speaker's clip with the smallest clip id), compared with the predicted embedding by cosine
similarity. The chance level of "the speaker's face is among the K nearest" is K / gallery size.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass

import numpy as np
import torch

from s2f.errors import ConfigError
from s2f.eval.metrics.gallery_rule import check_same_teacher, wins_gallery_place

__all__ = ["Gallery", "Neighbour"]

THUMBNAIL_SIDE = 96


@dataclass(frozen=True)
class Neighbour:
    """One gallery face near a prediction: its speaker, cosine similarity and thumbnail (a JPEG data URI)."""

    speaker_id: str
    similarity: float
    thumbnail: str


@dataclass
class Gallery:
    """Unit-length teacher embeddings [N, D] of one face per speaker, with their speakers and thumbnails."""

    embeddings: torch.Tensor
    speakers: list[str]
    thumbnails: list[str]
    teacher: str
    source: str

    @classmethod
    def from_shards(
        cls, root: str | os.PathLike, *, split: str = "test", teacher: str | None = None, max_faces: int = 2000
    ) -> Gallery:
        """Reads the first face of each speaker of ``split`` (at most ``max_faces`` speakers).

        Raises:
            ConfigError: When the shards hold another teacher's embeddings than ``teacher``, or no faces.
        """
        from s2f.shards import iter_records, read_manifest

        manifest = read_manifest(root)
        check_same_teacher(root, manifest.teacher, teacher, fix="give shards prepared with the model's teacher")
        first: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
        for record in iter_records(root, split):
            known = first.get(record.speaker_id)
            if known is None and len(first) >= max_faces:
                continue
            if wins_gallery_place(record.clip_id, None if known is None else known[0]):
                first[record.speaker_id] = (record.clip_id, record.embedding, record.face)
        if not first:
            raise ConfigError(f"{root}: split {split!r} holds no faces for a gallery; give --gallery-split")
        speakers = sorted(first)
        embeddings = torch.from_numpy(np.stack([first[s][1] for s in speakers]).astype(np.float32))
        return cls(
            embeddings=torch.nn.functional.normalize(embeddings, dim=1),
            speakers=speakers,
            thumbnails=[_jpeg_data_uri(first[s][2]) for s in speakers],
            teacher=manifest.teacher,
            source=f"{os.fspath(root)} ({split})",
        )

    def __len__(self) -> int:
        return len(self.speakers)

    @property
    def mean(self) -> torch.Tensor:
        """The mean face embedding of the gallery [D]."""
        return self.embeddings.mean(0)

    def nearest(self, embedding: torch.Tensor, k: int = 5) -> tuple[list[Neighbour], float]:
        """The ``k`` gallery faces most similar to ``embedding`` [D], and the mean similarity to all of them
        (what a face picked at random would score)."""
        similarities = self.embeddings @ torch.nn.functional.normalize(embedding.float(), dim=0)
        order = torch.argsort(similarities, descending=True)[: min(k, len(self))]
        neighbours = [Neighbour(self.speakers[i], float(similarities[i]), self.thumbnails[i]) for i in order.tolist()]
        return neighbours, float(similarities.mean())


def _jpeg_data_uri(face: np.ndarray) -> str:
    from PIL import Image

    image = Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
