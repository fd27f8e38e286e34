"""Kill -9 in the middle of an epoch, then ``s2f fit --ckpt_path last``: the same clips, in the same order.

Three real ``s2f fit`` processes on the debug recipe with 2 loader workers: one uninterrupted,
one that hangs at a given step and is killed with SIGKILL (after a mid-epoch checkpoint; the
steps between that checkpoint and the kill are lost, as in a real crash), and its resumption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
BATCH = 4
EPOCHS = 2
CHECKPOINT_EVERY = 3
HANG_AT = 11  # epoch 1 (8 steps per epoch); the last checkpoint before it is step 9


class ClipOrderLog(L.Callback):
    """Appends each training batch's step, epoch and clip ids to a JSON-lines file; can hang at a step.

    The hang stands in for a crash at a known point: the test kills the process while it waits.

    Args:
        path: File to append to.
        hang_at_step: Global step at which to stop and wait to be killed (after logging it).
    """

    def __init__(self, path: str, hang_at_step: int | None = None) -> None:
        self.path = path
        self.hang_at_step = hang_at_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int) -> None:
        line = {"step": trainer.global_step, "epoch": trainer.current_epoch, "clips": batch["clip_id"]}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        if trainer.global_step == self.hang_at_step:
            Path(self.path + ".hanging").touch()
            time.sleep(3600)


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


def _command(shards: Path, run: Path, log: Path, hang_at: int | None, *extra: str) -> list[str]:
    overrides = {
        "trainer": {
            "max_epochs": EPOCHS,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "default_root_dir": str(run),
            "logger": False,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    # A fixed folder: `--ckpt_path last` looks for last.ckpt in the checkpoint callback's dirpath.
                    "init_args": {"dirpath": str(run / "checkpoints"), "every_n_train_steps": CHECKPOINT_EVERY}
                    | {"save_last": True, "save_top_k": -1},
                },
                {
                    "class_path": f"{ClipOrderLog.__module__}.ClipOrderLog",
                    "init_args": {"path": str(log), "hang_at_step": hang_at},
                },
            ],
        },
        "data": {"init_args": {"data_dir": str(shards), "batch_size": BATCH, "num_workers": 2, "clip_seconds": 1.0}},
    }
    run.mkdir(parents=True, exist_ok=True)
    config = run / "resume.yaml"
    config.write_text(yaml.safe_dump(overrides))
    return [sys.executable, "-m", "s2f", "fit", "--config", str(ROOT / "recipes/debug.yaml"), "--config", str(config)]


def _env() -> dict[str, str]:
    # The callback is imported by its test-module name (tests.reliability.test_resume): the checkout's root
    # on the path finds it, tests/ finds the helpers it imports.
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _read(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
# Its own deadlines (240 + 30 + 300 + 300 s) come first and say which process got stuck.
@pytest.mark.timeout(1200)
def test_killed_run_resumes_from_last_checkpoint_with_the_same_data_order(shards: Path, tmp_path: Path) -> None:
    # The uninterrupted reference runs while the crashing run is being set up: two cores, two processes.
    reference_log = tmp_path / "reference.jsonl"
    reference = subprocess.Popen(
        _command(shards, tmp_path / "reference", reference_log, None), env=_env(), stderr=subprocess.PIPE, text=True
    )

    crashed_log = tmp_path / "crashed.jsonl"
    crashing = subprocess.Popen(
        _command(shards, tmp_path / "run", crashed_log, HANG_AT), env=_env(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not Path(str(crashed_log) + ".hanging").exists():
        assert crashing.poll() is None, crashing.stderr.read()[-3000:] if crashing.stderr else ""
        assert time.monotonic() < deadline, "the run never reached the step it should hang at"
        time.sleep(0.2)
    crashing.send_signal(signal.SIGKILL)
    crashing.wait(timeout=30)
    assert crashing.returncode == -signal.SIGKILL

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved_step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])
    assert saved_step == HANG_AT // CHECKPOINT_EVERY * CHECKPOINT_EVERY  # 9: mid-way through the second epoch

    resumed_log = tmp_path / "resumed.jsonl"
    resumed = subprocess.run(
        [*_command(shards, tmp_path / "run", resumed_log, None), "--ckpt_path", "last"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, reference_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_err[-3000:]

    expected = _read(reference_log)
    assert len(expected) == EPOCHS * 32 // BATCH
    before_crash, after_resume = _read(crashed_log), _read(resumed_log)
    assert before_crash == expected[: HANG_AT + 1]  # the crashed run followed the same order up to the hang
    assert after_resume[0]["step"] == saved_step and after_resume[0]["epoch"] == 1
    assert after_resume == expected[saved_step:]  # ... and the resumed one picks it up at the checkpoint
    # The epoch that was cut in two still covers every clip exactly once.
    second_epoch = [
        c for line in before_crash[8:saved_step] + after_resume for c in line["clips"] if line["epoch"] == 1
    ]
    assert len(second_epoch) == len(set(second_epoch)) == 32
