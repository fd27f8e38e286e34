"""Every documented way to start a multi-process run, on the CPU with two gloo ranks.

``s2f fit`` and ``s2f run`` with ``--trainer.strategy ddp --trainer.devices 2`` (Lightning starts rank 1
by running the command line again), ``recipes/ddp.yaml`` stacked on ``recipes/debug.yaml``, and torchrun
launching ``-m s2f fit`` as ``examples/torchrun_multinode.sh`` does. Each run is real: a subprocess
from the user's command line, 4 optimizer steps of the tiny debug model on the toy shards. A recording
callback (:mod:`helpers.launch`) writes, from inside every rank, the command line and environment that
rank was started with and what it trained; each test checks that both ranks trained to the end (losses
falling, identical weights, the checkpoint written) and that rank 1's command line reproduces the user's:
the subcommand, every ``--config`` and every override, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
STEPS = 4
CONSOLE_SCRIPT = Path(sys.executable).with_name("s2f")
# Variables a launcher sets differently for each rank: everything else must reach rank 1 unchanged.
LIGHTNING_PER_RANK = {"LOCAL_RANK"}
TORCHRUN_PER_RANK = {"LOCAL_RANK", "RANK", "ROLE_RANK", "TORCHELASTIC_ERROR_FILE"}


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


def _training_overrides(shards: Path, out: Path, *, steps: int = STEPS, probe_spawn: bool = False) -> list[str]:
    """The tiny run every test makes: 4 steps of 2 x 4 one-second clips, recorded from inside each rank."""
    return [
        "--data.data_dir", str(shards), "--data.init_args.clip_seconds", "1", "--data.init_args.batch_size", "4",
        "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
        "--trainer.callbacks+=helpers.launch.LaunchRecorder", "--trainer.callbacks.init_args.out_dir", str(out),
        "--trainer.callbacks.init_args.probe_spawn", str(probe_spawn).lower(),
    ]  # fmt: skip


def _launch(program: list[str], command: list[str], out: Path) -> list[dict[str, Any]]:
    """Runs ``program + command`` in ``out`` and returns each rank's record, rank 0 first."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    }
    done = subprocess.run([*program, *command], env=env, cwd=out, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    written = sorted(path.name for path in out.glob("rank*.json"))
    assert written == ["rank0.json", "rank1.json"], f"a rank stopped before the end of training: {written}"
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def _assert_both_ranks_trained(records: list[dict[str, Any]], out: Path) -> None:
    assert [record["global_rank"] for record in records] == [0, 1]
    for record in records:
        assert record["world_size"] == 2 and record["global_step"] == STEPS
        losses = record["losses"]
        assert len(losses) == STEPS and losses[-1] < losses[0], losses
        assert record["weights_at_end"] != record["weights_at_start"]
    # DDP keeps the ranks' weights equal only if both took part in every gradient all-reduce.
    assert records[0]["weights_at_end"] == records[1]["weights_at_end"]
    (checkpoint,) = out.glob("runs/**/last.ckpt")
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == STEPS


def _environment_differences(one: dict[str, str], other: dict[str, str]) -> set[str]:
    return {key for key in one.keys() | other.keys() if one.get(key) != other.get(key)}


def _assert_rank_one_ran_the_users_command(
    records: list[dict[str, Any]], command: list[str], interpreter_arguments: list[str], per_rank: set[str]
) -> None:
    """Rank 1's interpreter got ``interpreter_arguments`` then exactly the user's ``command``; same environment."""
    rank0, rank1 = records
    assert rank1["orig_argv"][1:] == [*interpreter_arguments, *command]
    assert rank0["argv"][1:] == rank1["argv"][1:] == command
    assert Path(rank0["argv"][0]).resolve() == Path(rank1["argv"][0]).resolve()
    assert _environment_differences(rank0["environ"], rank1["environ"]) <= per_rank


def _assert_spawned_workers_see_their_rank(records: list[dict[str, Any]]) -> None:
    """A loader worker started with ``spawn`` gets its rank's command line and environment, and stays a worker.

    ``spawn`` imports the parent's ``__main__`` again in the worker; if the ``s2f`` entry point ran the command
    on import, the worker would start a second training instead of answering, and the run would hang.
    """
    for record in records:
        worker = record["spawned_worker"]
        assert worker["pid"] != record["pid"]
        assert worker["argv"] == record["argv"]
        assert _environment_differences(worker["environ"], record["environ"]) == set()


@pytest.mark.slow
def test_fit_with_ddp_on_two_devices_relaunches_the_console_script(shards: Path, tmp_path: Path) -> None:
    if not CONSOLE_SCRIPT.is_file():
        pytest.skip(f"no s2f console script next to {sys.executable}; install the package with pip")
    command = [
        "fit", "--config", str(RECIPES / "debug.yaml"),
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
        *_training_overrides(shards, tmp_path, probe_spawn=True),
    ]  # fmt: skip
    records = _launch([str(CONSOLE_SCRIPT)], command, tmp_path)
    _assert_both_ranks_trained(records, tmp_path)
    # Lightning runs a script that has no module name as `python /absolute/path/to/script ARGS`.
    _assert_rank_one_ran_the_users_command(records, command, [str(CONSOLE_SCRIPT)], LIGHTNING_PER_RANK)
    assert records[0]["strategy"] == records[1]["strategy"] == "DDPStrategy"
    _assert_spawned_workers_see_their_rank(records)


@pytest.mark.slow
def test_run_with_ddp_on_two_devices_relaunches_python_dash_m(shards: Path, tmp_path: Path) -> None:
    command = [
        "run", str(RECIPES / "debug.yaml"),
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
        *_training_overrides(shards, tmp_path, probe_spawn=True),
    ]  # fmt: skip
    records = _launch([sys.executable, "-m", "s2f"], command, tmp_path)
    _assert_both_ranks_trained(records, tmp_path)
    # `python -m s2f` runs the module s2f.__main__, and Lightning names that module.
    _assert_rank_one_ran_the_users_command(records, command, ["-m", "s2f.__main__"], LIGHTNING_PER_RANK)
    _assert_spawned_workers_see_their_rank(records)


DDP_RECIPE_ON_THE_CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "2"]


@pytest.mark.slow
def test_the_ddp_recipe_stacked_on_the_debug_recipe_trains_on_two_cpu_processes(shards: Path, tmp_path: Path) -> None:
    command = [
        "fit", "--config", str(RECIPES / "debug.yaml"), "--config", str(RECIPES / "ddp.yaml"),
        *DDP_RECIPE_ON_THE_CPU, *_training_overrides(shards, tmp_path),
    ]  # fmt: skip
    records = _launch([sys.executable, "-m", "s2f"], command, tmp_path)
    _assert_both_ranks_trained(records, tmp_path)
    _assert_rank_one_ran_the_users_command(records, command, ["-m", "s2f.__main__"], LIGHTNING_PER_RANK)
    for record in records:  # the strategy is the recipe's, not the debug recipe's `auto`
        assert record["strategy"] == "DDPStrategy"
        recipe = {"find_unused_parameters": False, "gradient_as_bucket_view": True}
        assert {key: record["ddp_kwargs"].get(key) for key in recipe} == recipe
        # ddp.yaml's sync_batchnorm is for GPUs: DDP refuses SyncBatchNorm on the CPU, so s2f turns it off there.
        assert record["sync_batchnorm_layers"] == 0


@pytest.mark.slow
def test_torchrun_starts_both_ranks_with_the_users_command(shards: Path, tmp_path: Path) -> None:
    """As ``examples/torchrun_multinode.sh`` does: torchrun starts every rank, Lightning starts none."""
    command = [
        "fit", "--config", str(RECIPES / "debug.yaml"), "--config", str(RECIPES / "ddp.yaml"),
        *DDP_RECIPE_ON_THE_CPU, *_training_overrides(shards, tmp_path),
    ]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "s2f"]
    records = _launch(torchrun, command, tmp_path)
    _assert_both_ranks_trained(records, tmp_path)
    for record in records:
        assert record["orig_argv"][-len(command) - 2 :] == ["-m", "s2f", *command]
    _assert_rank_one_ran_the_users_command(records, command, ["-u", "-m", "s2f"], TORCHRUN_PER_RANK)


def test_lightning_commands_leave_sys_argv_as_the_user_typed_it(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a launcher re-runs is sys.argv, so it must hold the user's command while LightningCLI runs."""
    from s2f.cli import main

    command = ["fit", "--config", str(RECIPES / "debug.yaml"), *_training_overrides(shards, tmp_path, steps=1)]
    monkeypatch.chdir(tmp_path)  # the debug recipe logs and checkpoints under ./runs
    monkeypatch.setattr(sys, "argv", ["s2f", *command])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main() == 0
    (record,) = [json.loads(path.read_text()) for path in tmp_path.glob("rank*.json")]
    assert record["argv"] == ["s2f", *command]
    assert sys.argv == ["s2f", *command]
    # LightningCLI warns when it gets both `args` and a command line; for s2f that is every run, by design.
    assert not [w for w in caught if "args parameter is intended" in str(w.message)]
