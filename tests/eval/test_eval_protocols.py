"""The field's protocols of s2f eval against cases with known answers: identity-mean galleries, 1:2 matching,
the attribute-only baseline, the identity score, the independent evaluator, and the vectorised retrieval
against torchmetrics' per-query reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers.shards import ShardFactory, random_record, write_shards
from s2f.errors import ConfigError
from s2f.eval import recall_at_k
from s2f.eval.context import EvalContext, EvalOptions, ProtocolOptions
from s2f.eval.data import load_held_out, read_labelled_embeddings
from s2f.eval.field_protocols import field_protocols
from s2f.eval.independent import choose_evaluator, independent_metrics
from s2f.eval.metrics.attribute_baseline import attribute_predictions
from s2f.eval.metrics.galleries import identity_gallery_recall
from s2f.eval.metrics.identity_score import identity_scores
from s2f.eval.metrics.matching import matching_accuracy
from s2f.eval.metrics.retrieval import choose_gallery
from s2f.eval.metrics.similarity import feature_similarity, pairwise_distance


def _identities(count: int, clips: int, dim: int = 32, noise: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, list]:
    """``clips`` embeddings per identity around a random centre per identity."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(count, dim, generator=generator)
    faces = centres.repeat_interleave(clips, 0) + noise * torch.randn(count * clips, dim, generator=generator)
    return faces, [f"id{i:03d}" for i in range(count) for _ in range(clips)]


def _sampling_error(chance: float, trials: float) -> float:
    return (chance * (1 - chance) / trials) ** 0.5


# --------------------------------------------------------------------------------------------- retrieval


def _torchmetrics_recall(queries, query_speakers, gallery, gallery_speakers, metric, ks) -> dict[str, float]:
    """The reference: torchmetrics' RetrievalRecall, one query at a time (what s2f eval used before)."""
    from torchmetrics.functional.retrieval import retrieval_recall

    distances = pairwise_distance(queries, gallery, metric).double()
    own = [gallery_speakers.index(s) for s in query_speakers]
    result = {}
    for k in ks:
        hits = 0
        for row, index in enumerate(own):
            target = torch.zeros(len(gallery_speakers), dtype=torch.bool)
            target[index] = True
            hits += int(retrieval_recall(1.0 / (1.0 + distances[row]), target, top_k=k))
        result[f"R@{k}"] = hits / len(own)
    return result


def test_vectorised_retrieval_equals_the_torchmetrics_reference() -> None:
    gallery, speakers = _identities(37, 1)
    queries = gallery.repeat(4, 1) + 3.0 * torch.randn(4 * 37, 32, generator=torch.Generator().manual_seed(1))
    query_speakers = speakers * 4
    ks = (1, 2, 5, 10, 25)
    for metric in ("cos", "l2", "l1"):
        reference = _torchmetrics_recall(queries, query_speakers, gallery, speakers, metric, ks)
        assert 0.1 < reference["R@1"] < 0.9  # neither trivial nor hopeless: the ranks matter
        for chunk_size in (1, 7, 1024):
            fast = recall_at_k(queries, query_speakers, gallery, speakers, metric=metric, ks=ks, chunk_size=chunk_size)
            assert {k: fast[k] for k in reference} == reference, (metric, chunk_size)
        single = recall_at_k(queries, query_speakers, gallery, speakers, metric=metric, ks=ks, dtype=torch.float32)
        assert all(abs(single[k] - reference[k]) <= 1 / len(queries) for k in reference)


def test_a_tie_counts_against_the_query() -> None:
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    result = recall_at_k(torch.tensor([[1.0, 0.0]]), ["b"], gallery, ["a", "b", "c"], ks=(1, 2))
    assert result["R@1"] == 0.0 and result["R@2"] == 1.0


# --------------------------------------------------------------------------------------------- galleries


def test_identity_galleries_of_identical_embeddings_recall_everything() -> None:
    faces, speakers = _identities(150, 3)
    result = identity_gallery_recall(faces, speakers, faces, speakers, gallery_size=100, draws=4)
    assert result["gallery_size"] == 100 and not result["capped"] and result["distinct_draws"] == 4
    assert result["queries_per_draw"] == 300
    for metric in ("cos", "l1", "l2"):
        assert result[metric]["R@1"] == 1.0 and result[metric]["R@1_std"] == 0.0
        assert result[metric]["chance@1"] == pytest.approx(0.01) and result[metric]["chance@50"] == 0.5
        assert [k for k in result[metric] if k.startswith("R@") and "_" not in k] == [
            "R@1", "R@2", "R@5", "R@10", "R@20", "R@50",
        ]  # fmt: skip
    assert result["similarity"]["cos"] == pytest.approx(1.0)


def test_random_queries_sit_at_chance_and_the_draws_spread() -> None:
    faces, speakers = _identities(300, 4, noise=0.3)
    queries = torch.randn(len(faces), 32, generator=torch.Generator().manual_seed(5))
    result = identity_gallery_recall(queries, speakers, faces, speakers, gallery_size=100, draws=10)
    trials = result["queries_per_draw"] * result["distinct_draws"]
    for metric in ("cos", "l1", "l2"):
        for k in (1, 5, 10, 50):
            chance = k / 100
            assert abs(result[metric][f"R@{k}"] - chance) < 4 * _sampling_error(chance, trials), (metric, k)
        assert result[metric]["R@10_std"] > 0  # different identities in each draw


def test_a_gallery_larger_than_the_held_out_identities_is_capped_and_says_so() -> None:
    faces, speakers = _identities(30, 2)
    result = identity_gallery_recall(faces, speakers, faces, speakers, gallery_size=100, draws=10)
    assert result["gallery_size"] == 30 and result["capped"] and result["distinct_draws"] == 1
    assert "R@50" not in result["cos"] and result["cos"]["chance@20"] == pytest.approx(20 / 30)
    with pytest.raises(ConfigError, match="gallery_size >= 2"):
        identity_gallery_recall(faces, speakers, faces, speakers, gallery_size=1)


# --------------------------------------------------------------------------------------------- 1:2 matching


def test_matching_of_identical_embeddings_is_perfect_and_counts_every_pair() -> None:
    faces, speakers = _identities(20, 3)
    result = matching_accuracy(faces, speakers, faces, speakers)
    assert result["accuracy"] == 1.0 and (result["ci_low"], result["ci_high"]) == (1.0, 1.0)
    assert result["pairs"] == 60 * 19 and result["queries"] == 60 and result["chance"] == 0.5
    with pytest.raises(ConfigError, match="at least one impostor"):
        matching_accuracy(faces[:3], speakers[:3], faces[:3], speakers[:3])


def test_matching_of_random_predictions_sits_at_half_within_its_interval() -> None:
    faces, speakers = _identities(80, 5, noise=0.2)
    queries = torch.randn(len(faces), 32, generator=torch.Generator().manual_seed(3))
    result = matching_accuracy(queries, speakers, faces, speakers, resamples=500)
    # Pairs share queries and faces: 400 queries is the honest number of trials.
    assert abs(result["accuracy"] - 0.5) < 4 * _sampling_error(0.5, 400)
    assert result["ci_low"] < 0.5 < result["ci_high"] and result["ci_high"] - result["ci_low"] < 0.15


def test_a_gender_only_predictor_wins_across_genders_and_is_at_chance_within_one() -> None:
    generator = torch.Generator().manual_seed(0)
    gender_axis = torch.zeros(32)
    gender_axis[0] = 3.0
    faces, speakers = _identities(60, 3, noise=0.1)
    gender = {s: ("female" if int(s[2:]) % 2 else "male") for s in speakers}
    faces = faces + torch.stack([gender_axis if gender[s] == "male" else -gender_axis for s in speakers])
    faces = faces + 0.1 * torch.randn(faces.shape, generator=generator)
    gender_means = {g: faces[[i for i, s in enumerate(speakers) if gender[s] == g]].mean(0) for g in ("female", "male")}
    predicted = torch.stack([gender_means[gender[s]] for s in speakers])
    across = matching_accuracy(predicted, speakers, faces, speakers)
    within = matching_accuracy(predicted, speakers, faces, speakers, groups=gender)
    assert across["accuracy"] > 0.7
    assert abs(within["accuracy"] - 0.5) < 4 * _sampling_error(0.5, 60)  # 60 identities: the honest trials
    assert within["pairs"] == 180 * 29


# --------------------------------------------------------------------------------------------- identity score


def test_identity_score_counts_the_identities_the_faces_show() -> None:
    faces, speakers = _identities(10, 20, noise=0.05)
    constant = torch.ones_like(faces)
    two_people = faces[[40 * (i % 2) for i in range(len(faces))]]  # every face one of two identities, evenly
    result = identity_scores({"true": faces, "constant": constant, "two": two_people}, faces, speakers, splits=5)
    scores = result["scores"]
    assert scores["constant"]["mean"] == pytest.approx(1.0) and scores["constant"]["std"] == pytest.approx(0.0)
    assert scores["two"]["mean"] == pytest.approx(2.0, abs=0.05)
    assert 8.0 < scores["true"]["mean"] <= 10.0
    assert result["classes"] == 10 and "softmax over identities" in result["definition"] and result["splits"] == 5


# --------------------------------------------------------------------------------------------- attribute baseline

GENDERED_SPEAKERS, GENDERED_CLIPS, GENDERED_DIM = 40, 3, 16


def _gendered_world(folder: Path) -> Path:
    """Shards whose embeddings lie along a gender axis plus an identity part; every clip records its gender."""
    rng = np.random.default_rng(0)
    axis = np.zeros(GENDERED_DIM, np.float32)
    axis[0] = 2.0

    def records() -> Iterator:
        for person in range(GENDERED_SPEAKERS):
            gender = "f" if person % 2 else "m"
            centre = rng.standard_normal(GENDERED_DIM).astype(np.float32) + (axis if gender == "m" else -axis)
            split = "test" if person >= 3 * GENDERED_SPEAKERS // 4 else "train"
            for clip in range(GENDERED_CLIPS):
                record = random_record(
                    rng, f"p{person:02d}c{clip}", f"p{person:02d}", 1600, embed_dim=GENDERED_DIM, split=split,
                    metadata={"gender": gender, "age": 25 + person},
                )  # fmt: skip
                record.embedding = centre + 0.1 * rng.standard_normal(GENDERED_DIM).astype(np.float32)
                yield record

    return write_shards(folder / "shards", records(), teacher="toy", embed_dim=GENDERED_DIM)


@pytest.fixture(scope="module")
def gendered(shard_factory: ShardFactory) -> Path:
    return shard_factory.build("eval-gendered", _gendered_world)


def test_attribute_predictions_are_the_label_means_of_training_speakers(gendered: Path) -> None:
    train, speakers, metadata = read_labelled_embeddings(gendered, "train")
    assert len(train) == 30 * GENDERED_CLIPS and metadata[0] == {"gender": "m", "age": 25}
    held = load_held_out(gendered, "test")
    found = attribute_predictions(train, speakers, metadata, held.metadata)
    assert set(found) == {"gender", "gender_age"}
    assert found["gender"]["groups"] == {"female": 15, "male": 15} and found["gender"]["fallback"] == 0
    male_speakers = sorted({s for s, m in zip(speakers, metadata, strict=True) if m["gender"] == "m"})
    per_speaker = torch.stack([train[[i for i, s in enumerate(speakers) if s == m]].mean(0) for m in male_speakers])
    first_male = next(i for i, m in enumerate(held.metadata) if m["gender"] == "m")
    assert torch.allclose(found["gender"]["predictions"][first_male], per_speaker.mean(0), atol=1e-5)
    # Held-out ages (55-64) are beyond the training ages (25-54) but share the band 50-59 with some of them.
    assert found["gender_age"]["fallback"] > 0 and "male, 50-59" in found["gender_age"]["groups"]


def test_a_model_that_predicts_the_gender_mean_equals_the_attribute_only_baseline(gendered: Path) -> None:
    held = load_held_out(gendered, "test")
    train, speakers, metadata = read_labelled_embeddings(gendered, "train")
    predicted = attribute_predictions(train, speakers, metadata, held.metadata)["gender"]["predictions"]
    gallery_of = choose_gallery(held.clip_ids, held.speaker_ids)
    gallery, gallery_speakers = held.embeddings[list(gallery_of.values())], list(gallery_of)
    model = SimpleNamespace(decoder=None, teacher={"name": "toy"})
    context = EvalContext(model, gendered, "test", EvalOptions(), held, {"6s": predicted}, gallery_of)
    metrics = {
        "seconds": ["6s"],
        "similarity": {"6s": feature_similarity(predicted, held.embeddings)},
        "retrieval": {"6s": {"cos": recall_at_k(predicted, held.speaker_ids, gallery, gallery_speakers)}},
    }
    sections = field_protocols(metrics, context, decoded=None, teacher_embedded=None)
    galleries, matching = sections["identity_galleries"], sections["matching"]
    assert galleries["model"]["6s"] == galleries["attribute_only"]["gender"]
    assert matching["model"]["6s"] == matching["attribute_only"]["gender"]
    assert abs(matching["model"]["6s"]["same_gender"]["accuracy"] - 0.5) < 4 * _sampling_error(0.5, 10)
    baseline = sections["attribute_baseline"]
    comparison = baseline["comparison"]["gender"]
    assert list(comparison) == [
        "angle_deg", "R@1_one_face", "R@1_identity_means", "R@10_one_face", "R@10_identity_means", "matching",
        "matching_same_gender",
    ]  # fmt: skip
    assert comparison and all(row["model"] == pytest.approx(row["baseline"]) for row in comparison.values())
    assert not any(row["beats"] for row in comparison.values())
    assert "does not beat the attribute-only baseline (gender) on any figure" in baseline["verdict"]
    assert "reads no more than the speaker's gender" in baseline["verdict"]
    scores = sections["identity_score"]["scores"]
    assert scores["voice"] == scores["attribute_only_gender"] and scores["voice"]["mean"] < 2.01
    assert sections["independent_evaluator"] == {
        "skipped": "the model has no face decoder (attach one: s2f export CKPT OUT --decoder DECODER)"
    }


# --------------------------------------------------------------------------------------------- independent evaluator


class _PixelNetwork:
    """A stand-in face network: the image's mean colour in a 4 x 4 grid (deterministic, distinct per face)."""

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float(), 4)
        return pooled.flatten(1) - 127.5


def test_the_independent_evaluator_is_never_the_teacher_and_says_why_it_skips() -> None:
    network, reason = choose_evaluator("dlib_resnet", "auto")
    assert network is None and "--evaluator facenet --evaluator-weights" in reason
    network, name = choose_evaluator("vggface_tiny", "auto")
    assert name == "dlib_resnet" and network.embed_dim == 128
    assert choose_evaluator("vggface", "off") == (None, "turned off")
    with pytest.raises(ConfigError, match="is the model's teacher"):
        choose_evaluator("dlib_resnet", "dlib_resnet_tiny")


def test_independent_metrics_of_faces_that_are_the_true_faces_are_perfect() -> None:
    rng = np.random.default_rng(0)
    people = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    faces = np.repeat(people, 2, axis=0)
    speakers = [f"s{i // 2:02d}" for i in range(24)]
    shuffled = faces[rng.permutation(24)]
    genders = {s: ("female" if int(s[1:]) % 2 else "male") for s in speakers}
    result = independent_metrics(
        _PixelNetwork(), "pixels", faces, {"s2f": faces, "other": shuffled}, speakers, genders,
        options=ProtocolOptions(gallery_size=100, gallery_draws=3, matching_resamples=200, identity_splits=2), seed=0,
    )  # fmt: skip
    same = result["faces"]["s2f"]
    assert same["matching"]["accuracy"] == 1.0 and same["galleries"]["cos"]["R@1"] == 1.0
    assert same["matching_same_gender"]["accuracy"] == 1.0 and same["similarity"]["cos"] == pytest.approx(1.0)
    assert same["mismatched_cos"] < 0.9
    assert result["faces"]["other"]["galleries"]["cos"]["R@1"] < 0.5
    assert result["network"] == "pixels" and "embedded by pixels" in result["protocol"]
    assert result["identity_score"]["scores"]["s2f"] == result["identity_score"]["scores"]["true"]


# --------------------------------------------------------------------------------------------- the benchmark


def test_the_retrieval_benchmark_runs_and_checks_itself(tmp_path: Path) -> None:
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "retrieval_scale.py"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(script.parent))  # as when run as a script: it imports _table by name
        spec = importlib.util.spec_from_file_location("retrieval_scale", script)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        out = tmp_path / "bench.json"
        args = [
            "--gallery",
            "60",
            "--queries",
            "700",
            "--dim",
            "32",
            "--metrics",
            "cos,l1",
            "--torchmetrics-chunks",
            "1",
        ]
        result = module.main([*args, "--json", str(out)])
    assert result["identical_to_torchmetrics"] and out.exists()
    steps = [row["step"] for row in result["rows"]]
    assert steps[:3] == ["matmul (all scores at once)", "recall_at_k cos", "recall_at_k l1"]
    assert steps[3].startswith("torchmetrics (before), 700 queries") and result["rows"][0]["vs_matmul"] == 1.0
    assert 0.05 < result["recall"]["cos"]["R@1"] < 1.0 and result["recall"]["cos"]["chance@1"] == 1 / 60
