"""Two-process DDP on the CPU (gloo), launched by torchrun exactly as on a cluster.

Checks that litdata splits every epoch across the ranks without duplicates or gaps, that the
frozen teacher stays outside DDP, and that two ranks with batch 4 learn what one process learns
from the same global batches of 8.

This file is also the per-rank training script: ``python -m torch.distributed.run --nproc_per_node 2
tests/train/test_distributed.py worker SHARDS OUT`` (what the test runs).
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

ROOT = Path(__file__).resolve().parents[2]
WORLD = 2
BATCH_PER_RANK = 4
EPOCHS = 2
CLIP_SECONDS = 1.0
SEED = 0
DATA_SEED = 7
# One step's update, replayed from DDP's own state, against DDP's (L2, relative to the update): rounding only.
UPDATE_GAP = 1e-4


def _system() -> Any:
    import lightning as L

    from s2f.train import Speech2FaceSystem

    L.seed_everything(SEED, verbose=False)
    return Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")


def _worker(shards: str, out: str) -> None:
    """One rank: fit for EPOCHS, write the clip ids of every step and (rank 0) the final encoder."""
    import lightning as L
    from safetensors.torch import save_file

    from helpers.fit import quiet_trainer
    from s2f.data import S2FDataModule

    class StepLog(L.Callback):
        def __init__(self) -> None:
            self.steps: list[dict[str, Any]] = []

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            ddp = trainer.strategy.model
            self.ignored = sorted(getattr(ddp, "parameters_to_ignore", []))
            # What DDP reduces: every parameter it registered for gradient sync.
            self.synced = sorted(name for name, p in ddp.module.named_parameters() if name not in self.ignored)
            self.teacher_before = float(sum(p.double().sum() for p in pl_module.teacher.parameters()))

        def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.steps.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "clips": batch["clip_id"]})
            if trainer.current_epoch == 0 and trainer.global_rank == 0:
                # The state each step starts from, so the test can replay every step on its own (see below).
                state = {"encoder": pl_module.encoder.state_dict(), "optimizer": trainer.optimizers[0].state_dict()}
                torch.save(state, Path(out, f"state-step{trainer.global_step}.pt"))

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
            self.steps[-1]["loss"] = float(outputs["loss"])

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
            if trainer.current_epoch == 0 and trainer.global_rank == 0:
                state = {k: v.detach().contiguous() for k, v in pl_module.encoder.state_dict().items()}
                save_file(state, str(Path(out, "encoder-epoch0.safetensors")))

        def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
            rank = trainer.global_rank
            teacher_after = float(sum(p.double().sum() for p in pl_module.teacher.parameters()))
            report = {
                "rank": rank,
                "world_size": trainer.world_size,
                "steps": self.steps,
                "ignored": self.ignored,
                "synced": self.synced,
                "teacher_unchanged": teacher_after == self.teacher_before,
            }
            Path(out, f"rank{rank}.json").write_text(json.dumps(report))

    datamodule = S2FDataModule(
        shards, batch_size=BATCH_PER_RANK, num_workers=2, clip_seconds=CLIP_SECONDS, seed=DATA_SEED
    )
    trainer = quiet_trainer(
        out, devices=WORLD, strategy="ddp", max_epochs=EPOCHS, precision="32-true", callbacks=[StepLog()]
    )
    trainer.fit(_system(), datamodule)


# --------------------------------------------------------------------------------------------- test


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


@pytest.fixture(scope="module")
def ddp_run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp-run")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    command += [__file__, "worker", str(shards), str(out)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=out)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def _train_clip_ids(shards: Path) -> list[str]:
    from s2f.data import iter_records

    return [record.clip_id for record in iter_records(shards, "train")]


@pytest.mark.slow
def test_every_clip_is_seen_exactly_once_per_epoch_across_ranks(
    shards: Path, ddp_run: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, reports = ddp_run
    train_ids = _train_clip_ids(shards)
    assert len(train_ids) == 32
    assert [r["world_size"] for r in reports] == [WORLD] * WORLD
    orders = []
    for epoch in range(EPOCHS):
        per_rank = [[c for s in r["steps"] if s["epoch"] == epoch for c in s["clips"]] for r in reports]
        assert all(len(ids) == len(train_ids) // WORLD for ids in per_rank), per_rank
        assert not set(per_rank[0]) & set(per_rank[1]), "a clip went to both ranks"
        assert sorted(per_rank[0] + per_rank[1]) == sorted(train_ids)
        orders.append(per_rank)
    assert orders[0] != orders[1], "the train split should be reshuffled every epoch"


@pytest.mark.slow
def test_ddp_leaves_the_frozen_teacher_alone(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = ddp_run
    for report in reports:
        assert report["teacher_unchanged"]
        assert any(name.startswith("teacher.") for name in report["ignored"])
        assert all(name.startswith(("teacher.", "decoder.", "frontend.")) for name in report["ignored"])
        assert report["synced"] and all(name.startswith("encoder.") for name in report["synced"])


@pytest.mark.host_sensitive
@pytest.mark.slow
def test_two_ranks_match_one_process_on_the_same_global_batches(
    shards: Path, ddp_run: tuple[Path, list[dict[str, Any]]]
) -> None:
    """Every DDP step of the first epoch, replayed in one process from the state that step started from.

    DDP averages the two ranks' gradients, i.e. takes the gradient of the mean of the two ranks'
    losses; the reference does exactly that. BatchNorm normalises each rank's 4 clips on their own
    (SyncBatchNorm would pool them, but it only runs on GPUs), so the reference runs the encoder on
    the two halves separately too. Pooling BatchNorm over all 8 clips instead, as one process with
    batch 8 would, moves the step-1 loss by 4e-4 relative, 400 times the loss bound below.

    What remains is float32 rounding (gloo's all-reduce, one thread per rank against the test's
    threads, and each CPU kind's own kernels). Run freely over several steps, those gaps grow about
    tenfold per step, since the paper's loss (about 700 here, mostly the distillation term) and
    Adam at lr 1e-3 make a tiny network's training chaotic: a free-running comparison of step 3's
    loss passed at 1e-5 on an AVX-512 host and failed at 1.25e-5 on an AVX2 one. So each step is
    compared on its own, starting from the weights and Adam state rank 0 had at that step:
    - each rank's loss within 1e-6 relative: the same weights and clips, so only the forward's
      rounding differs (measured at most 9.7e-8);
    - the step's update within UPDATE_GAP (1e-4, L2, relative to the update) of DDP's (measured at
      most 1.3e-5, on the first step). Adam divides each gradient by its own running size, so a
      weight whose gradient nearly cancels moves by a rounding-decided step, which is why the
      bound is on the whole update and not per weight.
    Measured on an AVX2 host (AMD EPYC, no AVX-512) with its own kernels and again with PyTorch's
    and oneDNN's kernels held to the generic/SSE4.1 paths (ATEN_CPU_CAPABILITY=default,
    ONEDNN_MAX_CPU_ISA=SSE41): the same figures to two digits. The comparison fails when it
    should: a step that loses rank 1's gradient differs from DDP's by 94 % of the update.
    """
    from safetensors.torch import load_file

    from s2f.data import ClipDataset
    from s2f.train.datamodule import ClipCollate

    out, reports = ddp_run
    clips = {item["clip_id"]: item for item in ClipDataset(shards, "train")}
    collate = ClipCollate(round(CLIP_SECONDS * 16_000))
    system = _system()
    optimizer = system.configure_optimizers()["optimizer"]
    system.train()
    names = [name for name, _ in system.encoder.named_parameters()]
    steps = list(zip(reports[0]["steps"], reports[1]["steps"], strict=True))
    assert len(steps) == EPOCHS * 32 // (WORLD * BATCH_PER_RANK)
    first_epoch = steps[: len(steps) // EPOCHS]

    def parameters_at(step: int) -> torch.Tensor:
        if step == len(first_epoch):
            # Parameters only: DDP broadcasts rank 0's BatchNorm running statistics, a different thing.
            state = load_file(str(out / "encoder-epoch0.safetensors"))
        else:
            state = torch.load(out / f"state-step{step}.pt", weights_only=True)["encoder"]
        return torch.cat([state[n].flatten() for n in names])

    def replay(rank0: dict[str, Any], ranks: tuple[dict[str, Any], ...]) -> tuple[list[float], float]:
        """Rank 0's state at this step, the reference's step on `ranks`' clips: (losses, update gap)."""
        start = torch.load(out / f"state-step{rank0['step']}.pt", weights_only=True)
        system.encoder.load_state_dict(start["encoder"])
        optimizer.load_state_dict(start["optimizer"])
        optimizer.zero_grad()
        losses = [system._losses(collate([clips[c] for c in step["clips"]]))[0] for step in ranks]
        torch.stack(losses).mean().backward()
        optimizer.step()
        before, after = parameters_at(rank0["step"]), parameters_at(rank0["step"] + 1)
        replayed = torch.cat([p.detach().flatten() for p in system.encoder.parameters()])
        assert (after - before).abs().max() > 1e-4, "each step should move the weights"
        return [loss.item() for loss in losses], ((after - replayed).norm() / (after - before).norm()).item()

    loss_gaps, update_gaps = [], []
    for rank0, rank1 in first_epoch:
        losses, update_gap = replay(rank0, (rank0, rank1))
        loss_gaps += [abs(loss / step["loss"] - 1) for loss, step in zip(losses, (rank0, rank1), strict=True)]
        update_gaps.append(update_gap)
    # The same comparison, made to fail once: a step on rank 0's clips alone (a lost gradient).
    _, one_rank_gap = replay(first_epoch[0][0], (first_epoch[0][0],))
    print(f"largest loss gap {max(loss_gaps):.1e}; update gaps", " ".join(f"{gap:.1e}" for gap in update_gaps))
    print(f"update gap with rank 1's gradient lost: {one_rank_gap:.2f}")
    assert max(loss_gaps) < 1e-6, loss_gaps
    assert max(update_gaps) < UPDATE_GAP, update_gaps
    assert one_rank_gap > 100 * UPDATE_GAP, one_rank_gap


SCALE_RECIPES = [["gpu"], ["gpu", "ddp"], ["gpu", "fsdp"], ["gpu", "ddp", "multinode"]]


@pytest.mark.parametrize("stack", SCALE_RECIPES, ids=lambda stack: "+".join(["paper", *stack]))
def test_scale_recipes_stack_on_the_paper_recipe(stack: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from s2f.cli import main

    configs = [arg for name in ["paper", *stack] for arg in ("--config", str(ROOT / "recipes" / f"{name}.yaml"))]
    with pytest.raises(SystemExit) as exited:
        main(["fit", *configs, "--print_config"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert "precision: bf16-mixed" in printed and "accelerator: gpu" in printed
    assert "s2f.encoders.PaperCNNEncoder" in printed  # the model comes from the paper recipe, untouched
    if "ddp" in stack:
        assert "DDPStrategy" in printed and "find_unused_parameters: false" in printed
        assert "sync_batchnorm: true" in printed
    if "multinode" in stack:
        assert "num_nodes: 2" in printed and "dirpath: checkpoints/paper" in printed


@pytest.mark.slow
def test_gpu_precision_falls_back_to_fp32_without_a_gpu(shards: Path, tmp_path: Path) -> None:
    from s2f.train.lightning_cli import run_lightning_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so bf16-mixed stays")
    args = [
        "fit", "--config", str(ROOT / "recipes" / "debug.yaml"), "--trainer.accelerator", "auto",
        "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
        "--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false",
        "--trainer.default_root_dir", str(tmp_path), "--data.init_args.data_dir", str(shards),
        "--data.init_args.clip_seconds", "1",
    ]  # fmt: skip
    cli = run_lightning_cli(args)
    assert cli.trainer.precision == "32-true" and cli.trainer.global_step == 1
    explicit = [*args, "--trainer.accelerator", "cpu"]
    assert run_lightning_cli(explicit).trainer.precision == "bf16-mixed"  # asked for on the CPU: kept


@pytest.mark.gpu
def test_fsdp_recipe_settings_train_and_checkpoint_without_the_teacher(shards: Path, tmp_path: Path) -> None:
    """fsdp.yaml's strategy on one GPU (Lightning refuses FSDP on the CPU, so CI cannot run it)."""
    from lightning.pytorch.strategies import FSDPStrategy

    from helpers.fit import quiet_trainer
    from s2f.data import S2FDataModule
    from s2f.train import Speech2FaceSystem

    system = _system()
    strategy = FSDPStrategy(sharding_strategy="SHARD_GRAD_OP", state_dict_type="full")
    trainer = quiet_trainer(
        tmp_path, accelerator="gpu", devices=1, strategy=strategy, precision="bf16-mixed", max_steps=2
    )
    trainer.fit(system, S2FDataModule(str(shards), batch_size=4, clip_seconds=CLIP_SECONDS))
    trainer.save_checkpoint(tmp_path / "fsdp.ckpt")
    state = torch.load(tmp_path / "fsdp.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert state and not any(key.startswith("teacher.") for key in state)
    restored = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    restored.load_state_dict(state)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    torch.set_num_threads(1)
    _worker(sys.argv[2], sys.argv[3])
