"""The field's protocols beside the paper's: SF2F's identity-mean galleries, Wen et al.'s 1:2 matching,
the attribute-only baseline, an independent evaluator network and an identity score.

:func:`field_protocols` adds one section per protocol to ``metrics.json`` (each with its protocol text,
chance level and source), computed on the same held-out clips and predictions as the paper's metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import S2FError
from .context import EvalContext, ProtocolOptions
from .data import HeldOut, decode_faces, read_labelled_embeddings
from .independent import choose_evaluator, independent_metrics
from .metrics.attribute_baseline import attribute_predictions, gender_label
from .metrics.galleries import SF2F_SOURCE, identity_gallery_recall
from .metrics.identity_score import identity_scores
from .metrics.matching import WEN_SOURCE, matching_accuracy
from .metrics.retrieval import recall_at_k
from .metrics.similarity import DISTANCES, feature_similarity

__all__ = ["ProtocolOptions", "field_protocols"]

GALLERY_DRAWS = "each of {draws} seeded draws picks {size} of the {available} held-out identities"
GALLERY_ALL = (
    "N = all {available} held-out identities ({requested} asked for, capped at the identities there are; SF2F used "
    "100), so every draw holds the same gallery, one draw says it all and the spread is 0"
)
GALLERY_PROTOCOL = (
    "{draws}; the gallery holds each drawn identity's mean true face embedding (all its clips); every clip of a "
    "drawn identity queries it with the embedding predicted from its voice; R@K by cosine, L1 and L2 of unit "
    "vectors, mean and standard deviation over the draws; chance = K / {size} exactly"
)
MATCHING_PROTOCOL = (
    "every held-out clip's predicted embedding against its own identity's mean true face embedding and one impostor "
    "identity's, for every other held-out identity (all pairs); success when the own face is nearer by cosine (a "
    "tie counts half); chance 50 %; {confidence:.0%} interval from {resamples} bootstrap resamples of the query "
    "speakers; same gender: only impostors whose recorded gender is the speaker's"
)
ATTRIBUTE_PROTOCOL = (
    "for each held-out clip, the mean {train!r}-split teacher embedding of the training speakers with the same "
    "recorded labels (each speaker's clips averaged first); the same metrics as the model's, on the same clips, "
    "galleries and pairs"
)
ATTRIBUTE_SOURCE = "the attribute-only control of the Make-Zenerator project (a predictor that sees only labels)"
VARIANT_WORDS = {"gender": "gender", "gender_age": "gender and age band"}


def field_protocols(
    metrics: dict[str, Any],
    context: EvalContext,
    *,
    decoded: dict[str, np.ndarray] | None,
    teacher_embedded: dict[str, torch.Tensor] | None,
) -> dict[str, Any]:
    """The new sections of ``metrics.json``: ``identity_galleries``, ``matching``, ``attribute_baseline``,
    ``identity_score`` and ``independent_evaluator``.

    Args:
        metrics: The paper's metrics already computed (read for the baseline comparison).
        context: The evaluation: held-out clips, predictions, the paper protocol's gallery (for the baseline's
            retrieval), the shard root (its training split gives the attribute-only baseline), the model (its
            teacher's name and decoder), the protocols' settings and the seed of the draws, resamples and splits.
        decoded: Decoded faces by name (``f2f``, ``s2f``), or None without a decoder.
        teacher_embedded: The same faces re-embedded by the teacher, or None.
    """
    held, predicted, model, seed = context.held, context.predicted, context.model, context.options.seed
    options, train_split = context.options.protocols, context.options.train_split
    gallery, gallery_speakers = context.gallery, context.gallery_speakers
    genders = _speaker_genders(held)
    attributes, attribute_reason = _attributes(context.data_dir, train_split, held)
    sections: dict[str, Any] = {
        "identity_galleries": _galleries(held, predicted, attributes, options, seed),
        "matching": _matching(held, predicted, attributes, genders, options, seed),
    }
    sections["attribute_baseline"] = (
        {"skipped": attribute_reason}
        if not attributes
        else _attribute_section(metrics, sections, attributes, held, gallery, gallery_speakers, train_split)
    )
    embedded = {"true": held.embeddings, "voice": predicted[list(predicted)[-1]], **(teacher_embedded or {})}
    embedded.update({f"attribute_only_{v}": a["predictions"] for v, a in attributes.items()})
    sections["identity_score"] = {
        "space": f"the teacher's ({held.teacher})",
        **identity_scores(embedded, held.embeddings, held.speaker_ids, splits=options.identity_splits, seed=seed),
    }
    sections["independent_evaluator"] = _independent(model, held, decoded, attributes, genders, options, seed)
    return sections


def _speaker_genders(held: HeldOut) -> dict[str, str] | None:
    """Each held-out speaker's recorded gender, or None unless every clip records one."""
    labels = [gender_label(m) for m in held.metadata]
    if not labels or any(label is None for label in labels):
        return None
    return {speaker: str(label) for speaker, label in zip(held.speaker_ids, labels, strict=True)}


def _attributes(data_dir: Any, train_split: str, held: HeldOut) -> tuple[dict[str, dict[str, Any]], str]:
    try:
        embeddings, speakers, metadata = read_labelled_embeddings(data_dir, train_split)
    except S2FError as exc:
        return {}, f"no {train_split!r} split to take label means from ({exc})"
    if embeddings.shape[-1] != held.embeddings.shape[1]:
        return {}, f"the {train_split!r} split holds no embeddings of the evaluated split's size"
    found = attribute_predictions(embeddings, speakers, metadata, held.metadata)
    return found, "" if found else "the metadata records no gender (or age) for the training and held-out speakers"


def _galleries(
    held: HeldOut,
    predicted: dict[str, torch.Tensor],
    attributes: dict[str, dict[str, Any]],
    options: ProtocolOptions,
    seed: int,
) -> dict[str, Any]:
    def recall(queries: torch.Tensor) -> dict[str, Any]:
        return identity_gallery_recall(
            queries, held.speaker_ids, held.embeddings, held.speaker_ids,
            gallery_size=options.gallery_size, draws=options.gallery_draws, seed=seed,
        )  # fmt: skip

    model = {key: recall(values) for key, values in predicted.items()}
    first = next(iter(model.values()))
    size, available = first["gallery_size"], first["identities_available"]
    draws = (
        GALLERY_ALL.format(available=available, requested=options.gallery_size)
        if size == available
        else GALLERY_DRAWS.format(draws=first["distinct_draws"], size=size, available=available)
    )
    return {
        "protocol": GALLERY_PROTOCOL.format(draws=draws, size=size),
        "source": SF2F_SOURCE,
        "requested_size": options.gallery_size,
        "model": model,
        "attribute_only": {variant: recall(a["predictions"]) for variant, a in attributes.items()},
    }


def _matching(
    held: HeldOut,
    predicted: dict[str, torch.Tensor],
    attributes: dict[str, dict[str, Any]],
    genders: dict[str, str] | None,
    options: ProtocolOptions,
    seed: int,
) -> dict[str, Any]:
    def both(queries: torch.Tensor) -> dict[str, Any]:
        args = (queries, held.speaker_ids, held.embeddings, held.speaker_ids)
        result: dict[str, Any] = {}
        for kind, groups in (("all", None), ("same_gender", genders)):
            if kind == "same_gender" and genders is None:
                result[kind] = {"skipped": "the metadata does not record every held-out speaker's gender"}
                continue
            try:
                result[kind] = matching_accuracy(*args, groups=groups, resamples=options.matching_resamples, seed=seed)
            except S2FError as exc:  # a single held-out identity, or none of the same gender
                result[kind] = {"skipped": str(exc)}
        return result

    return {
        "protocol": MATCHING_PROTOCOL.format(confidence=0.95, resamples=options.matching_resamples),
        "source": WEN_SOURCE,
        "chance": 0.5,
        "model": {key: both(values) for key, values in predicted.items()},
        "attribute_only": {variant: both(a["predictions"]) for variant, a in attributes.items()},
    }


def _attribute_section(
    metrics: dict[str, Any],
    sections: dict[str, Any],
    attributes: dict[str, dict[str, Any]],
    held: HeldOut,
    gallery: torch.Tensor,
    gallery_speakers: list[str],
    train_split: str,
) -> dict[str, Any]:
    variants = {}
    for variant, found in attributes.items():
        predictions = found["predictions"]
        variants[variant] = {
            "labels": VARIANT_WORDS[variant],
            "training_speakers_per_label": found["groups"],
            "fallback_clips": found["fallback"],
            "similarity": feature_similarity(predictions, held.embeddings),
            "retrieval": {
                m: recall_at_k(predictions, held.speaker_ids, gallery, gallery_speakers, metric=m) for m in DISTANCES
            },
        }
    comparison = {variant: _compare(metrics, sections, variants[variant], variant) for variant in variants}
    return {
        "protocol": ATTRIBUTE_PROTOCOL.format(train=train_split),
        "source": ATTRIBUTE_SOURCE,
        "variants": variants,
        "comparison": comparison,
        "verdict": " ".join(_verdict(comparison[v], VARIANT_WORDS[v]) for v in comparison),
    }


def _compare(
    metrics: dict[str, Any], sections: dict[str, Any], baseline: dict[str, Any], variant: str
) -> dict[str, dict[str, Any]]:
    """The model's figure and the baseline's, side by side, at the longest input; ``beats`` when strictly better.

    Keys are stable names (``angle_deg``, ``R@1_one_face``, ``R@1_identity_means``, ..., ``matching``,
    ``matching_same_gender``); each row's ``figure`` says the same in words.
    """
    longest = metrics["seconds"][-1]
    rows: dict[str, tuple[str, float | None, float | None, str]] = {
        "angle_deg": (
            "angle to the true face (deg)", metrics["similarity"][longest]["angle_deg"]["mean"],
            baseline["similarity"]["angle_deg"]["mean"], "lower",
        ),
    }  # fmt: skip
    retrieval, gallery = metrics["retrieval"][longest]["cos"], sections["identity_galleries"]
    ours_means, theirs_means = gallery["model"][longest]["cos"], gallery["attribute_only"][variant]["cos"]
    for k in (1, 10):
        if f"R@{k}" in retrieval:
            words = f"R@{k}, one face per speaker"
            rows[f"R@{k}_one_face"] = (words, retrieval[f"R@{k}"], baseline["retrieval"]["cos"][f"R@{k}"], "higher")
        if f"R@{k}" in ours_means:
            words = f"R@{k}, identity-mean galleries"
            rows[f"R@{k}_identity_means"] = (words, ours_means[f"R@{k}"], theirs_means[f"R@{k}"], "higher")
    matching = sections["matching"]
    for kind, key, words in (("all", "matching", "1:2 matching"),
                             ("same_gender", "matching_same_gender", "1:2 matching, same gender")):  # fmt: skip
        ours, theirs = matching["model"][longest][kind], matching["attribute_only"][variant][kind]
        if "accuracy" in ours and "accuracy" in theirs:
            rows[key] = (words, ours["accuracy"], theirs["accuracy"], "higher")
    return {
        key: {"figure": words, "model": a, "baseline": b, "better": better,
              "beats": bool(a < b if better == "lower" else a > b)}
        for key, (words, a, b, better) in rows.items()
        if a is not None and b is not None
    }  # fmt: skip


def _verdict(comparison: dict[str, dict[str, Any]], words: str) -> str:
    """One sentence: does the model beat the baseline that knows only ``words``?"""
    beaten = [row["figure"] for row in comparison.values() if row["beats"]]
    not_beaten = [row["figure"] for row in comparison.values() if not row["beats"]]
    if not beaten:
        return (
            f"The model does not beat the attribute-only baseline ({words}) on any figure: as far as these numbers "
            f"show, it reads no more than the speaker's {words} from the voice."
        )
    if not_beaten:
        return (
            f"The model does not beat the attribute-only baseline ({words}) on {'; '.join(not_beaten)}; "
            f"it beats it on {'; '.join(beaten)}."
        )
    return f"The model beats the attribute-only baseline ({words}) on every figure: it knows more than the {words}."


def _independent(
    model: Any,
    held: HeldOut,
    decoded: dict[str, np.ndarray] | None,
    attributes: dict[str, dict[str, Any]],
    genders: dict[str, str] | None,
    options: ProtocolOptions,
    seed: int,
) -> dict[str, Any]:
    if decoded is None or model.decoder is None:
        return {"skipped": "the model has no face decoder (attach one: s2f export CKPT OUT --decoder DECODER)"}
    network, name = choose_evaluator((model.teacher or {}).get("name"), options.evaluator, options.evaluator_weights)
    if network is None:
        return {"skipped": name}
    faces = dict(decoded)
    if "gender" in attributes:
        # The baseline's prediction is one of a few label means: decode each once, then give every clip its face.
        predictions = attributes["gender"]["predictions"]
        unique, rows = torch.unique(predictions, dim=0, return_inverse=True)
        faces["attribute_only_gender"] = decode_faces(model.decoder, unique, model.device)[rows.numpy()]
    return independent_metrics(network, name, held.faces, faces, held.speaker_ids, genders, options=options, seed=seed)
