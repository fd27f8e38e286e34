"""The headline numbers of an evaluation as one flat block of ``metrics.json`` under stable keys.

The nested sections of ``metrics.json`` hold every number with its protocol; scripts that gate on
quality (``benchmarks/demo_quality.py``), dashboards and the README's table read this block instead,
so that a reorganised section does not silently break them. Every key is always present; a number
whose section did not run is ``null``.

==================================== ===========================================================
key                                  meaning
==================================== ===========================================================
``seconds``                          the longest input length evaluated (e.g. ``"6s"``)
``gallery_size``                     faces in the retrieval gallery (one per held-out speaker)
``recall_at_1/5/10``                 voice -> face retrieval by cosine at that length
``chance_at_1/5/10``                 K / gallery size
``angle_deg``                        mean angle between predicted and true embeddings
``mean_face_angle_deg``              the same for the training split's mean embedding
``angle_below_mean_face_deg``        how far the prediction beats the mean face (positive: better)
``mean_face_recall_at_1/5/10``       retrieval by the mean embedding for every clip: one ranking of the
                                     gallery for all clips, so about chance (exactly, when every speaker
                                     has as many clips)
``same_speaker_rank1``               the nearest other clip's prediction is the same speaker's
``same_speaker_rank1_chance``        that speaker's share of the other clips
``same_speaker_eer``                 EER of same- vs different-speaker prediction pairs (chance 0.5)
``craniofacial_mean_r``              mean Pearson r of the craniofacial measurements, S2F vs F2F face
``craniofacial_shuffled_r``          the same with S2F faces paired with other clips' F2F faces
``gender_agreement``                 the classifier's gender for the face from the voice vs the true face
``gender_chance``                    agreement of independent labels with the same frequencies
``mean_age_s2f`` / ``mean_age_true`` the classifier's mean age of the faces from voices / true faces
``f2f_recall_at_1/10``               faces decoded from the true embedding, re-embedded by the
                                     teacher, retrieving their own speaker (the decoder's share)
``s2f_face_recall_at_1/10``          the same for the faces decoded from the voice
``f2f_gender_agreement``             gender of the face decoded from the true embedding vs the true face
``f2f_mean_age``                     mean age of the faces decoded from the true embeddings
``true_vs_recorded_gender``          the classifier's gender of the true faces vs the gender the data
                                     set records (VoxCeleb's meta): how far the classifier can be
                                     trusted on these faces; null when the data records none
``s2f_vs_recorded_gender``           the same for the faces drawn from the voices
==================================== ===========================================================
"""

from __future__ import annotations

from typing import Any

__all__ = ["FACE_IDENTITY_PROTOCOL", "HEADLINE_KEYS", "headline"]

FACE_IDENTITY_PROTOCOL = (
    "faces decoded from the true teacher embedding (f2f) and from {longest} of voice (s2f), embedded again by the "
    "model's teacher, query the voice-retrieval gallery (one true face per held-out speaker) by cosine; R@K is "
    "the share whose own speaker ranks in the top K (ties count against the query); chance = K / gallery size; "
    "f2f leaves out the gallery clips, whose gallery face is the embedding their face was decoded from"
)

HEADLINE_KEYS = (
    "seconds",
    "gallery_size",
    "recall_at_1",
    "recall_at_5",
    "recall_at_10",
    "chance_at_1",
    "chance_at_5",
    "chance_at_10",
    "angle_deg",
    "mean_face_angle_deg",
    "angle_below_mean_face_deg",
    "mean_face_recall_at_1",
    "mean_face_recall_at_5",
    "mean_face_recall_at_10",
    "same_speaker_rank1",
    "same_speaker_rank1_chance",
    "same_speaker_eer",
    "craniofacial_mean_r",
    "craniofacial_shuffled_r",
    "gender_agreement",
    "gender_chance",
    "mean_age_s2f",
    "mean_age_true",
    "f2f_recall_at_1",
    "f2f_recall_at_10",
    "s2f_face_recall_at_1",
    "s2f_face_recall_at_10",
    "f2f_gender_agreement",
    "f2f_mean_age",
    "true_vs_recorded_gender",
    "s2f_vs_recorded_gender",
)


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The flat headline block (:data:`HEADLINE_KEYS`) of a metrics dict written by :func:`s2f.eval.evaluate`.

    Example:
        >>> block = headline({"seconds": ["6s"], "retrieval": {"6s": {"cos": {"R@1": 0.2, "chance@1": 0.1}}}})
        >>> block["recall_at_1"], block["chance_at_1"], block["f2f_recall_at_1"]
        (0.2, 0.1, None)
    """
    longest = (metrics.get("seconds") or [None])[-1]
    retrieval = _get(metrics, "retrieval", str(longest), "cos") or {}
    angle = _get(metrics, "similarity", str(longest), "angle_deg", "mean")
    mean_face = _get(metrics, "baseline", "similarity", "angle_deg", "mean")
    block: dict[str, Any] = {
        "seconds": longest,
        "gallery_size": retrieval.get("gallery_size"),
        "angle_deg": angle,
        "mean_face_angle_deg": mean_face,
        "angle_below_mean_face_deg": mean_face - angle if angle is not None and mean_face is not None else None,
        "gender_agreement": _get(metrics, "demographics", "gender", "agreement"),
        "gender_chance": _get(metrics, "demographics", "gender", "chance"),
        "mean_age_s2f": _get(metrics, "demographics", "age", "mean_age_s2f"),
        "mean_age_true": _get(metrics, "demographics", "age", "mean_age_true"),
        "f2f_gender_agreement": _get(metrics, "demographics", "f2f", "gender", "agreement"),
        "f2f_mean_age": _get(metrics, "demographics", "f2f", "mean_age"),
        "true_vs_recorded_gender": _get(metrics, "demographics", "recorded_gender_agreement", "true"),
        "s2f_vs_recorded_gender": _get(metrics, "demographics", "recorded_gender_agreement", "s2f"),
    }
    consistency = _get(metrics, "consistency", str(longest)) or {}
    block["same_speaker_rank1"] = consistency.get("rank1")
    block["same_speaker_rank1_chance"] = consistency.get("rank1_chance")
    block["same_speaker_eer"] = consistency.get("eer")
    correlations = [c for c in (_get(metrics, "craniofacial", "correlations") or {}).values() if c.get("r") is not None]
    block["craniofacial_mean_r"] = sum(c["r"] for c in correlations) / len(correlations) if correlations else None
    block["craniofacial_shuffled_r"] = (
        sum(c["shuffled_r"] for c in correlations) / len(correlations) if correlations else None
    )
    for k in (1, 5, 10):
        block[f"recall_at_{k}"] = retrieval.get(f"R@{k}")
        block[f"chance_at_{k}"] = retrieval.get(f"chance@{k}")
        block[f"mean_face_recall_at_{k}"] = _get(metrics, "baseline", "retrieval", "cos", f"R@{k}")
    for k in (1, 10):
        block[f"f2f_recall_at_{k}"] = _get(metrics, "face_identity", "f2f", f"R@{k}")
        block[f"s2f_face_recall_at_{k}"] = _get(metrics, "face_identity", "s2f", f"R@{k}")
    return {key: block[key] for key in HEADLINE_KEYS}
