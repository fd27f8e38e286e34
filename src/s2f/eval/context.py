"""What one evaluation is, frozen: its options (:class:`EvalOptions`) and everything every section reads
(:class:`EvalContext`: the model, the held-out clips, the predictions, the gallery).

Each section of ``metrics.json`` reads the context and adds its numbers; nothing a section computes changes
the context, so the sections can be read, tested and reordered one at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError
from ..model.inference import InferenceSettings, renamed_keywords
from .data import HeldOut

__all__ = ["EvalContext", "EvalOptions", "ProtocolOptions", "Switch"]

Switch = Literal["auto", "on", "off"] | bool


@dataclass(frozen=True)
class ProtocolOptions:
    """Protocols of later work: SF2F's galleries, 1:2 matching, an evaluator, identity score.

    One field of :class:`EvalOptions` (``protocols``); ``evaluate``'s keywords and ``s2f eval``'s flags and
    ``--config`` keys name these settings on their own (``gallery_size``), as they did before.

    Attributes:
        gallery_size: Identities per identity-mean gallery (SF2F: 100); capped at the held-out identities.
        gallery_draws: Random identity-mean galleries the recall is averaged over.
        matching_resamples: Bootstrap resamples of the query speakers for the 1:2 matching interval.
        evaluator: Face network that re-embeds the decoded faces: 'auto' (dlib_resnet unless it is the teacher,
            else facenet when --evaluator-weights is given), a registered teacher name, or 'off'.
        evaluator_weights: Weights file of the evaluator network (e.g. FaceNet's 20180402-114759-vggface2.pt).
        identity_splits: Splits of the identity score (SF2F's VGGFace score: 5).
    """

    gallery_size: int = 100
    gallery_draws: int = 10
    matching_resamples: int = 1000
    evaluator: str = "auto"
    evaluator_weights: str | None = None
    identity_splits: int = 5


_PROTOCOL_FIELDS = tuple(f.name for f in fields(ProtocolOptions))


@dataclass(frozen=True)
class EvalOptions:
    """How the evaluation runs: input lengths, seed, sections and protocols.

    Each default is the paper's, or s2f's where the paper gives none.

    Attributes:
        seconds: Input lengths to evaluate (the paper: 3 s and 6 s).
        max_clips: Evaluate a seeded random subset of this many clips.
        seed: Seed of the subset, the shuffled baselines, the draws and the face grid.
        craniofacial: ``"auto"`` runs the craniofacial correlations when the model has a face decoder.
        demographics: ``"auto"`` runs the age and gender agreement when the model has a face decoder.
        face_identity: ``"auto"`` re-embeds the decoded faces (from the true embedding and from the voice)
            with the model's teacher and retrieves their speakers, when the model has a face decoder and
            its teacher can be built here (see :mod:`s2f.eval.faces_fidelity`).
        protocols: The protocols of later work (:class:`ProtocolOptions`: galleries, 1:2 matching, the
            evaluator network, the identity score); ``s2f eval`` takes their fields as flags of their own.
        train_split: The split whose mean embedding is the constant baseline (its label means: the attribute-only).
        progress: Show progress bars.
        title: The report's title.
        inference: How the encoder runs: its inference precision ('auto': bf16 where the device runs it
            natively), compiling and batch size.
    """

    seconds: tuple[float, ...] = (3.0, 6.0)
    max_clips: int | None = None
    seed: int = 0
    craniofacial: Switch = "auto"
    demographics: Switch = "auto"
    face_identity: Switch = "auto"
    protocols: ProtocolOptions = field(default_factory=ProtocolOptions)
    train_split: str = "train"
    progress: bool = True
    title: str = "s2f evaluation"
    inference: InferenceSettings = field(default_factory=InferenceSettings)

    def with_keywords(self, **keywords: Any) -> EvalOptions:
        """These options with some changed by name (``evaluate``'s keyword call); a protocol's setting
        (``gallery_size=20``) changes it in :attr:`protocols`, as ``s2f eval --gallery_size 20`` does.

        Example:
            >>> EvalOptions().with_keywords(seed=3, gallery_size=20).protocols.gallery_size
            20
        """
        if "precision" in keywords:  # s2f 0.1's evaluate(..., precision=): now the inference settings' field
            inference_precision = renamed_keywords(keywords, stacklevel=4).pop("inference_precision")
            keywords = {k: v for k, v in keywords.items() if k != "precision"}
            keywords["inference"] = replace(self.inference, inference_precision=inference_precision)
        protocol_keywords = {name: keywords[name] for name in _PROTOCOL_FIELDS if name in keywords}
        if protocol_keywords:
            protocols = keywords.get("protocols", self.protocols)
            keywords = {k: v for k, v in keywords.items() if k not in protocol_keywords}
            keywords["protocols"] = replace(protocols, **protocol_keywords)
        unknown = sorted(set(keywords) - {f.name for f in fields(EvalOptions)})
        if unknown:
            raise TypeError(f"evaluate() got unexpected keyword arguments: {', '.join(unknown)}")
        return replace(self, **keywords)


@dataclass(frozen=True)
class EvalContext:
    """Everything the sections of one evaluation read, fixed before the first section runs.

    Attributes:
        model: The evaluated :class:`~s2f.Speech2Face`.
        data_dir: The shard root.
        split: The evaluated (held-out) split.
        options: How to evaluate.
        held: The held-out clips, sorted by clip id.
        predicted: Embeddings predicted from the voices, by input length (``"3s"``, ...; longest last).
        gallery_of: Each held-out speaker's gallery clip (the retrieval protocol's one face per speaker).
        decoded: Faces decoded from the true embeddings (``f2f``) and from the voices (``s2f``), one per clip;
            None when no face section runs (:func:`~s2f.eval.sections.prepare_faces` fills this and the next).
        classified: The age-and-gender classifier's reading of the true faces (``true``), ``s2f`` and ``f2f``,
            or None when the demographics section does not run.
        reembedded: The decoded faces embedded again by the teacher, or None.
        reembed_skipped: Why they were not (the teacher cannot be built here), or "".
    """

    model: Any
    data_dir: str | os.PathLike[str]
    split: str
    options: EvalOptions
    held: HeldOut
    predicted: dict[str, torch.Tensor]
    gallery_of: dict[str, int]
    decoded: dict[str, np.ndarray] | None = None
    classified: dict[str, list[dict[str, Any]]] | None = None
    reembedded: dict[str, torch.Tensor] | None = None
    reembed_skipped: str = ""

    @property
    def longest(self) -> str:
        """The longest input length evaluated (e.g. ``"6s"``): the one the face sections decode."""
        return list(self.predicted)[-1]

    @property
    def gallery_speakers(self) -> list[str]:
        """The gallery's speakers, in gallery order."""
        return list(self.gallery_of)

    @property
    def gallery(self) -> torch.Tensor:
        """The gallery's true face embeddings [speakers, D]."""
        return self.held.embeddings[list(self.gallery_of.values())]

    @property
    def has_decoder(self) -> bool:
        """Whether the model draws faces."""
        return self.model.decoder is not None

    def wanted(self, switch: Switch) -> bool:
        """Whether a face section runs: ``"auto"`` runs it when the model has a face decoder."""
        if switch == "auto":
            return self.has_decoder
        if switch in ("on", True):
            return True
        if switch in ("off", False):
            return False
        raise ConfigError(f"craniofacial/demographics must be 'auto', 'on' or 'off', got {switch!r}")
