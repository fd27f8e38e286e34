"""Encoder families beyond the paper's CNN: the conformer and timm backbones, their recipes, and training."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from helpers.shards import ShardFactory
from s2f import ENCODERS, Speech2Face
from s2f.cli import main
from s2f.encoders import ConformerEncoder, TimmVoiceEncoder
from s2f.encoders.conformer import AttentivePooling
from s2f.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- conformer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [7, 8, 101, 298, 598])
def test_conformer_takes_any_number_of_frames(frames: int) -> None:
    encoder = ENCODERS.create("s2f_conformer_tiny")
    assert encoder(torch.randn(2, 2, frames, 257)).shape == (2, 64)


def test_conformer_refuses_too_short_and_malformed_input() -> None:
    encoder = ENCODERS.create("s2f_conformer_tiny")
    assert encoder.min_frames == 7 and encoder.output_frames(6) == 0
    with pytest.raises(ValueError, match="needs at least 7"):
        encoder(torch.randn(1, 2, 6, 257))
    with pytest.raises(ValueError, match=r"expected a spectrogram \[B, 2, T, 257\]"):
        encoder(torch.randn(1, 1, 100, 257))
    with pytest.raises(ValueError, match="must divide"):
        ConformerEncoder(d_model=30, num_heads=4)


@pytest.mark.host_sensitive
def test_conformer_clips_in_a_batch_do_not_see_each_other() -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_conformer_tiny", pooling="attentive").eval()
    spec = torch.randn(3, 2, 120, 257)
    together = encoder(spec)
    alone = torch.cat([encoder(spec[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("crop_to_band", [False, True])
def test_band_limited_conformer_hears_nothing_above_its_band(crop_to_band: bool, tmp_path: Path) -> None:
    """What a wideband recording adds above the band cannot move the prediction; below it, it does. Cropped to
    the band, the subsampling reads the band's bins only."""
    torch.manual_seed(0)
    limited = ENCODERS.create("s2f_conformer_tiny", band_limit_hz=3800.0, crop_to_band=crop_to_band).eval()
    assert limited.band_bins == (122 if crop_to_band else None)  # bins 0-121: 0-3781 Hz
    spec = torch.randn(2, 2, 300, 257)
    above, below = spec.clone(), spec.clone()
    above[..., 122:] += torch.randn_like(above[..., 122:])  # bin 122 = 3812.5 Hz
    below[..., 40:60] += torch.randn_like(below[..., 40:60])
    with torch.no_grad():
        reference = limited(spec)
        assert torch.equal(limited(above), reference)
        assert not torch.allclose(limited(below), reference)
        if not crop_to_band:  # the same weights, heard without the band
            full = ENCODERS.create("s2f_conformer_tiny").eval()
            full.load_state_dict(limited.state_dict())
            assert not torch.allclose(full(above), full(spec))
    model = Speech2Face(limited, None, clip_seconds=3.0, teacher={"name": "dlib_resnet", "embed_dim": 64})
    reloaded = Speech2Face.from_pretrained(model.save_pretrained(tmp_path / "model"))
    with torch.no_grad():
        assert torch.equal(reloaded.encoder(above), reference)


def test_cropping_to_the_band_shrinks_the_projection_and_needs_a_band() -> None:
    masked = ENCODERS.create("s2f_conformer_tiny", band_limit_hz=4000.0)
    cropped = ENCODERS.create("s2f_conformer_tiny", band_limit_hz=4000.0, crop_to_band=True)
    assert cropped.subsampling.proj.in_features < masked.subsampling.proj.in_features / 1.9
    with pytest.raises(ValueError, match="crop_to_band needs a band_limit_hz"):
        ENCODERS.create("s2f_conformer_tiny", crop_to_band=True)


def test_attentive_pooling_is_a_weighted_mean_of_frames() -> None:
    torch.manual_seed(0)
    pool = AttentivePooling(8)
    frame = torch.randn(2, 1, 8)
    torch.testing.assert_close(pool(frame.expand(2, 5, 8)), frame[:, 0])  # weights sum to one
    frames = torch.randn(2, 5, 8)
    pooled = pool(frames)
    assert (pooled <= frames.max(dim=1).values + 1e-6).all() and (pooled >= frames.min(dim=1).values - 1e-6).all()


def test_conformer_recipe_builds_the_registered_full_model() -> None:
    recipe = yaml.safe_load((RECIPES / "conformer.yaml").read_text())
    encoder = recipe["model"]["init_args"]["encoder"]
    assert encoder["class_path"] == "s2f.encoders.ConformerEncoder"
    with torch.device("meta"):
        from_recipe = ConformerEncoder(**encoder["init_args"])
        registered = ENCODERS.create("s2f_conformer")
    assert _params(from_recipe) == _params(registered) == 38_323_968  # "38.3 M" in the docs
    assert from_recipe.embed_dim == registered.embed_dim == 4096


# -- timm backbones -----------------------------------------------------------------------------


def test_timm_head_keeps_the_frequency_bands_unless_told_to_pool_them() -> None:
    by_band = TimmVoiceEncoder("test_resnet", embed_dim=8, hidden_dim=None)
    pooled = TimmVoiceEncoder("test_resnet", embed_dim=8, hidden_dim=None, pool="time_freq")
    assert by_band.feature_shape == pooled.feature_shape == (96, 9)  # 257 bins / 32
    assert by_band.head[-1].in_features == 96 * 9 and pooled.head[-1].in_features == 96
    for encoder in (by_band, pooled):
        assert encoder(torch.randn(2, 2, 298, 257)).shape == (2, 8)


def test_timm_sizing_dry_run_leaves_batch_norm_statistics_alone() -> None:
    encoder = ENCODERS.create("s2f_resnet18_tiny")
    norms = [m for m in encoder.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and encoder.training and encoder.backbone.training
    for norm in norms:
        assert int(norm.num_batches_tracked) == 0
        assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))


@pytest.mark.parametrize("model_name", ["test_convnext", "test_mambaout"])
def test_any_convolutional_timm_model_works_and_trains_every_parameter(model_name: str) -> None:
    # ConvNeXt keeps a norm in its classifier head, MambaOut returns channels-last features: the
    # feature extractor leaves the first out (no parameter without a gradient, which DDP refuses)
    # and the encoder transposes the second.
    torch.manual_seed(0)
    encoder = TimmVoiceEncoder(model_name, embed_dim=16, hidden_dim=32)
    encoder(torch.randn(2, 2, 150, 257)).square().mean().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_unsuitable_or_unknown_timm_models_and_missing_timm_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match=r"'test_vit' cannot take a spectrogram .*convolutional backbone"):
        TimmVoiceEncoder("test_vit", embed_dim=8)
    with pytest.raises(ConfigError, match="cannot build 'no_such_net'"):
        TimmVoiceEncoder("no_such_net", embed_dim=8)
    monkeypatch.setitem(sys.modules, "timm", None)  # what `import timm` sees when it is not installed
    with pytest.raises(ConfigError, match=r"pip install 's2f\[train\]'"):
        TimmVoiceEncoder("test_resnet", embed_dim=8)


# -- both families ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s2f_conformer_tiny", "s2f_resnet18_tiny"])
def test_saved_model_rebuilds_from_its_config(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create(name), clip_seconds=1.0).eval()
    folder = model.save_pretrained(tmp_path / name)
    reloaded = Speech2Face.from_pretrained(folder)
    waves = torch.randn(2, 16_000) * 0.1
    assert type(reloaded.encoder) is type(model.encoder)
    torch.testing.assert_close(reloaded(waves), model(waves), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("recipe", "encoder_class", "encoder_line"),
    [
        ("conformer.yaml", "s2f.encoders.ConformerEncoder", "d_model: 256"),
        ("timm.yaml", "s2f.encoders.TimmVoiceEncoder", "model_name: resnet18"),
    ],
)
def test_family_recipe_replaces_the_paper_cnn(
    recipe: str, encoder_class: str, encoder_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fit", "--config", str(RECIPES / "paper.yaml"), "--config", str(RECIPES / recipe), "--print_config"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert f"class_path: {encoder_class}" in printed and encoder_line in printed
    assert "PaperCNNEncoder" not in printed and "channels: [" not in printed and "pool_after" not in printed
    assert "lambda_distill: 200.0" in printed and "WandbLogger" in printed  # the rest is the paper's


@pytest.fixture(scope="module")
def shards(shard_factory: ShardFactory) -> Path:
    return shard_factory.toy(speakers=8, clips_per_speaker=4, held_out=1)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["s2f_conformer_tiny", "s2f_resnet18_tiny", "s2f_efficientnet_b0_tiny"])
def test_debug_variant_of_each_family_learns_through_the_cli(encoder: str, shards: Path, tmp_path: Path) -> None:
    args = [
        "fit", "--config", str(RECIPES / "debug.yaml"), "--model.init_args.encoder", encoder,
        "--data.init_args.data_dir", str(shards), "--data.init_args.clip_seconds", "1",
        "--trainer.max_epochs", "5", "--trainer.limit_val_batches", "0",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0
    (metrics,) = tmp_path.glob("debug/version_*/metrics.csv")
    with metrics.open() as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["train/loss_epoch"]) for row in rows if row.get("train/loss_epoch")]
    l2 = [float(row["train/l2_epoch"]) for row in rows if row.get("train/l2_epoch")]
    assert len(losses) == len(l2) == 5
    assert losses[-1] < losses[0], losses
    # The distillation term has the teacher's entropy as its floor; the L2 term, the direction of
    # the embedding, has none and must fall clearly.
    assert l2[-1] < 0.75 * l2[0], l2


# -- the comparison benchmark -------------------------------------------------------------------

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_encoder_comparison_measures_every_selected_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # benchmarks/ is a folder of scripts that import each other
    compare = importlib.import_module("compare_encoders")
    assert compare.select_models(None, tiny_only=True) == ENCODERS.list(tiny=True)
    assert compare.select_models("s2f_conformer*", tiny_only=False) == ["s2f_conformer", "s2f_conformer_tiny"]

    out = tmp_path / "compare.json"
    (row,) = compare.main(
        ["--models", "s2f_conformer_tiny", "--speed-batch", "2", "--warmup", "0", "--repeats", "1",
         "--epochs", "1", "--speakers", "4", "--json", str(out)]
    )  # fmt: skip
    assert row.model == "s2f_conformer_tiny" and row.embed_dim == 64 and row.batch == 2
    assert row.params_m * 1e6 == pytest.approx(_params(ENCODERS.create(row.model)))
    assert row.gflop_per_clip == pytest.approx(0.0359, rel=1e-2)  # one 6 s clip, forward
    assert row.train_clips_per_s > 0 and row.infer_clips_per_s > 0
    assert 0 < row.val_angle_start < 180 and 0 < row.val_angle_end < 180
    report = json.loads(out.read_text())
    assert 0 < report["baseline_angle"] < 90 and report["rows"][0]["val_angle_end_per_seed"] == [row.val_angle_end]
    printed = capsys.readouterr().out
    assert "val angle end" in printed and "constant prediction" in printed

    # A full-size encoder has no quality figures (the tiny teacher is 64-D): the table says so.
    full = compare.Row("s2f_conformer", 38.3, 4096, 9.22, 2, 1.0, 2.0)
    assert compare.format_table([full]).splitlines()[-1].split()[-2:] == ["-", "-"]


@pytest.mark.parametrize(
    "name", ["s2f_cnn_tiny", "s2f_conformer_tiny", "s2f_resnet18_tiny", "s2f_efficientnet_b0_tiny"]
)
def test_an_encoder_can_start_at_the_average_face(name: str) -> None:
    encoder = ENCODERS.create(name).eval()
    mean = torch.randn(encoder.embed_dim) * 10  # far larger than anything the fresh layers produce
    encoder.start_from(mean)
    spectrogram = torch.randn(3, 2, 200, 257)
    with torch.no_grad():
        predicted = encoder(spectrogram)
    cosine = torch.nn.functional.cosine_similarity(predicted, mean[None], dim=-1)
    assert bool((cosine > 0.99).all()), cosine
