"""``recipes/fsdp.yaml`` (FSDP2) on two CPU processes with gloo: train, checkpoint, resume, export.

Each run is ``s2f fit`` from the user's command line, ``fsdp.yaml`` stacked on ``debug.yaml`` with two
devices (Lightning's launcher starts rank 1), on the toy shards: 32 training clips, 2 ranks x 4 clips, so
4 steps an epoch. One run trains 6 steps without a stop; another trains 2 steps, stops, and resumes from
``last.ckpt`` in the middle of the first epoch to step 6. A recording callback (:mod:`helpers.sharding`)
writes from inside every rank what it holds: the encoder's parameters are sharded across the two ranks,
the frozen teacher's are whole on each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.fit import fit_args, weights

ROOT = Path(__file__).resolve().parents[2]
FSDP_RECIPE = ROOT / "recipes" / "fsdp.yaml"
STEPS = 6
STOP_AT = 2  # inside the first epoch (4 steps), so the resume restores the loader's place too
RANKS = 2


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


def _fit(shards: Path, run: Path, steps: int, *extra: str) -> list[dict[str, Any]]:
    """``s2f fit`` with the FSDP recipe on 2 CPU processes until ``steps``; each rank's record, rank 0 first."""
    recorder = {"class_path": "helpers.sharding.ShardRecorder", "init_args": {"out_dir": str(run)}}
    command = [sys.executable, "-m", "s2f", "fit", *fit_args(shards, run, epochs=2, every=2, callbacks=[recorder])]
    command += ["--config", str(FSDP_RECIPE), "--trainer.devices", str(RANKS), "--trainer.max_steps", str(steps)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    }
    for record in run.glob("rank*.json"):
        record.unlink()
    done = subprocess.run([*command, *extra], env=env, cwd=run, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((run / f"rank{rank}.json").read_text()) for rank in range(RANKS)]


@pytest.fixture(scope="module")
def uninterrupted(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    run = tmp_path_factory.mktemp("fsdp-uninterrupted")
    return run, _fit(shards, run, STEPS)


@pytest.fixture(scope="module")
def resumed(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    run = tmp_path_factory.mktemp("fsdp-resumed")
    first = _fit(shards, run, STOP_AT)
    assert [record["global_step"] for record in first] == [STOP_AT] * RANKS
    return run, _fit(shards, run, STEPS, "--ckpt_path", "last")


@pytest.mark.slow
def test_fsdp_recipe_shards_the_encoder_and_not_the_teacher(uninterrupted: tuple[Path, list[dict[str, Any]]]) -> None:
    _, records = uninterrupted
    for rank, record in enumerate(records):
        assert record["global_rank"] == rank and record["world_size"] == RANKS
        assert record["strategy"] == "ModelParallelStrategy" and record["encoder_class"] == "FSDPPaperCNNEncoder"
        parameters = record["parameters"]
        encoder = {name: p for name, p in parameters.items() if name.startswith("encoder.")}
        teacher = {name: p for name, p in parameters.items() if name.startswith("teacher.")}
        assert encoder and teacher
        assert all(p["sharded"] for p in encoder.values()) and not any(p["sharded"] for p in teacher.values())
        assert all(p["local"] == p["full"] for p in teacher.values())
        # fully_shard splits each parameter's first dimension into equal parts (the last one may be short).
        held, whole = sum(p["local"] for p in encoder.values()), sum(p["full"] for p in encoder.values())
        assert 0.4 * whole < held < 0.6 * whole, (held, whole)
        assert record["optimized"] == len(encoder)  # Adam steps the encoder's shards, nothing else
        losses = record["losses"]
        assert record["global_step"] == STEPS and len(losses) == STEPS and losses[-1] < losses[0], losses
    # Both ranks see the same gathered encoder: the gradients were reduced across them at every step.
    assert records[0]["encoder_checksum"] == records[1]["encoder_checksum"]
    assert records[0]["encoder_norm"] == records[1]["encoder_norm"]


@pytest.mark.slow
def test_fsdp_checkpoint_is_whole_and_leaves_the_teacher_out(uninterrupted: tuple[Path, list[dict[str, Any]]]) -> None:
    from s2f.train import Speech2FaceSystem

    run, _ = uninterrupted
    step, state = weights(run / "checkpoints" / "last.ckpt")
    assert step == STEPS
    assert not any(key.startswith("teacher.") for key in state)
    # The full state, gathered: plain tensors of the whole shapes, one entry per encoder parameter and buffer.
    reference = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    expected = {key: value.shape for key, value in reference.state_dict().items() if not key.startswith("teacher.")}
    assert {key: value.shape for key, value in state.items()} == expected
    assert all(type(value) is torch.Tensor for value in state.values())
    reference.load_state_dict(state)  # an unsharded system takes it as it is


@pytest.mark.slow
def test_fsdp_resume_mid_epoch_reaches_the_uninterrupted_weights(
    uninterrupted: tuple[Path, list[dict[str, Any]]], resumed: tuple[Path, list[dict[str, Any]]]
) -> None:
    (run, records), (resumed_run, resumed_records) = uninterrupted, resumed
    assert [record["global_step"] for record in resumed_records] == [STEPS] * RANKS
    assert len(resumed_records[0]["losses"]) == STEPS - STOP_AT  # the resumed run took only the missing steps
    # The resumed run's last losses are the uninterrupted run's: the same clips, in the same order, on the same weights.
    assert resumed_records[0]["losses"] == records[0]["losses"][STOP_AT:]
    step, state = weights(run / "checkpoints" / "last.ckpt")
    resumed_step, resumed_state = weights(resumed_run / "checkpoints" / "last.ckpt")
    assert step == resumed_step == STEPS and state.keys() == resumed_state.keys()
    differing = [key for key in state if not torch.equal(state[key], resumed_state[key])]
    assert not differing, differing
    # ... and the resume did something: the checkpoint it started from holds other weights.
    _, start = weights(resumed_run / "checkpoints" / f"epoch=0-step={STOP_AT}.ckpt")
    assert any(not torch.equal(start[key], state[key]) for key in state if key.startswith("encoder."))


@pytest.mark.slow
def test_fsdp_checkpoint_exports_a_model_that_from_pretrained_loads(
    uninterrupted: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from s2f import Speech2Face
    from s2f.cli import main
    from s2f.train import Speech2FaceSystem

    run, _ = uninterrupted
    checkpoint = run / "checkpoints" / "last.ckpt"
    main(["export", str(checkpoint), str(tmp_path / "model")])
    model = Speech2Face.from_pretrained(tmp_path / "model")
    assert type(model.encoder).__name__ == "PaperCNNEncoder"  # the model's class, not FSDP's wrapper
    _, state = weights(checkpoint)
    exported = model.encoder.state_dict()
    assert exported and all(torch.equal(value, state[f"encoder.{key}"]) for key, value in exported.items())
    # It predicts what an unsharded training system with the checkpoint's weights predicts.
    reference = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    reference.load_state_dict(state)
    waves = torch.randn(2, 16_000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted, expected = model.eval()(waves), reference.eval()(waves)
    assert predicted.shape == (2, reference.teacher.embed_dim)
    torch.testing.assert_close(predicted, expected, rtol=0, atol=0)
