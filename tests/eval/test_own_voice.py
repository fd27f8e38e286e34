"""The real-voice report's metrics (s2f.eval.metrics.own_voice): consistency, gender, age and separation, on clips whose
answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from s2f.eval.metrics.own_voice import face_separation, nearest_same_speaker, own_voice_report, speaker_separation


def clustered(speakers: int, clips: int, spread: float, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``clips`` embeddings per speaker around the speaker's own random direction in 128-D."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((speakers, 128))
    embeddings = np.concatenate([c + spread * rng.standard_normal((clips, 128)) for c in centres])
    return embeddings, [f"s{i}" for i in range(speakers) for _ in range(clips)]


def test_same_speaker_rank1_is_perfect_for_tight_speakers_and_near_chance_for_shuffled() -> None:
    embeddings, speakers = clustered(8, 4, 0.1)
    result = nearest_same_speaker(embeddings, speakers)
    assert result["rank1"] == 1.0
    assert result["chance"] == pytest.approx(3 / 31)
    shuffled = [nearest_same_speaker(embeddings, list(np.random.default_rng(s).permutation(speakers)))["rank1"]
                for s in range(20)]  # fmt: skip
    assert np.mean(shuffled) < 0.3


def test_separation_grows_with_the_distance_between_speakers() -> None:
    tight, speakers = clustered(6, 3, 0.2)
    loose, _ = clustered(6, 3, 2.0)
    a, b = speaker_separation(tight, speakers), speaker_separation(loose, speakers)
    assert a["between_deg"] > 60 and a["within_deg"] < 15
    assert b["within_deg"] > a["within_deg"]
    # One face for everyone (the collapse the report exists to catch): nothing apart.
    same = speaker_separation(np.ones((6, 4)), [f"s{i // 2}" for i in range(6)])
    assert same["between_deg"] == pytest.approx(0.0, abs=1e-3)


def test_face_separation_compares_pixels_across_and_within_speakers() -> None:
    rng = np.random.default_rng(0)
    faces = [np.full((8, 8, 3), 100.0) + rng.normal(0, 1, (8, 8, 3)) for _ in range(2)]
    faces += [np.full((8, 8, 3), 160.0) + rng.normal(0, 1, (8, 8, 3)) for _ in range(2)]
    result = face_separation(faces, ["a", "a", "b", "b"])
    assert result["between"] == pytest.approx(60.0, abs=1.0)
    assert result["within"] < 2.0


def test_report_scores_each_gender_on_its_own() -> None:
    embeddings, speakers = clustered(4, 3, 0.1)
    voice = ["female"] * 6 + ["male"] * 6
    # Every female clip drawn as a woman; one male speaker drawn as a woman on all three clips.
    faces = ["female"] * 6 + ["female"] * 3 + ["male"] * 3
    ages = [20.0] * 6 + [40.0] * 6
    report = own_voice_report(embeddings, speakers, voice, faces, ages, [None] * 6 + [30.0] * 6)
    assert report["clips"] == 12 and report["speakers"] == 4
    assert report["gender"]["female"] == {"clips": 6, "speakers": 2, "agreement": 1.0}
    assert report["gender"]["male"]["agreement"] == 0.5
    assert report["age"]["female"]["mean"] == 20.0 and report["age"]["female"]["mean_abs_error_where_known"] is None
    assert report["age"]["male"]["mean_abs_error_where_known"] == 10.0
    assert report["separation"]["male"]["between_deg"] > 30
