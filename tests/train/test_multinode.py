"""Two nodes x two processes on one machine, started by the real launchers, for ``s2f fit``.

Each "node" is a launcher group of its own, as on a cluster, and the two meet at one rendezvous on
127.0.0.1 and a free port: torchrun with ``--nnodes 2 --nproc-per-node 2 --node-rank 0|1``, or ``s2f fit``
itself with ``NODE_RANK``/``MASTER_ADDR``/``MASTER_PORT`` set as a cluster scheduler sets them (Lightning
then starts the node's second process). Every run is the debug recipe with ``--trainer.num_nodes 2
--trainer.devices 2`` on the toy shards: 32 training clips, 4 ranks x 4 clips, so 2 steps an epoch, 2
epochs. A recording callback (:mod:`helpers.nodes`) writes from inside every rank what it was and what it
trained on. One more run has node 1's processes killed in the second epoch, and both nodes restarted
with ``--ckpt_path last``: it ends on the uninterrupted run's weights. Last, ``s2f prepare --num-nodes 2
--devices 2`` from two torchrun groups writes the shard root a single process writes, byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.fit import RECIPE, checkpoint_abs_sum, read_steps
from helpers.processes import descendants

ROOT = Path(__file__).resolve().parents[2]
NODES, PER_NODE = 2, 2
WORLD = NODES * PER_NODE
EPOCHS, STEPS_PER_EPOCH = 2, 2
KILL_AT = 3  # node 1 dies once step 3 (the second epoch's second step) has begun: its checkpoint exists
TIMEOUT = 400
# Relative gap allowed between resumed and uninterrupted final weights (see the kill test).
RESUME_GAP = 1e-7


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fit_config(shards: Path, run: Path, step_seconds: float = 0.0) -> Path:
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(run / "checkpoints"), "save_last": True, "save_top_k": -1}
            | {"every_n_train_steps": 1},
        },
        {"class_path": "helpers.nodes.ClipRecorder", "init_args": {"out_dir": str(run), "step_seconds": step_seconds}},
        {"class_path": "helpers.fit.StepLog", "init_args": {"path": str(run / "steps.log")}},
    ]
    overrides = {
        "trainer": {"max_epochs": EPOCHS, "limit_val_batches": 0, "num_sanity_val_steps": 0, "logger": False}
        | {"default_root_dir": str(run), "callbacks": callbacks},
        "data": {"init_args": {"data_dir": str(shards), "batch_size": 4, "num_workers": 0, "clip_seconds": 1.0}},
    }
    run.mkdir(parents=True, exist_ok=True)
    (run / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return run / "overrides.yaml"


def _start_nodes(launcher: str, run: Path, config: Path, *extra: str) -> list[subprocess.Popen[str]]:
    """Both nodes' launcher groups, started side by side; their output goes to ``run/node{N}.log``."""
    port = _free_port()
    fit = ["fit", "--config", str(RECIPE), "--config", str(config)]
    fit += ["--trainer.num_nodes", str(NODES), "--trainer.devices", str(PER_NODE), *extra]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    }
    nodes = []
    for node in range(NODES):
        if launcher == "torchrun":
            command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NODES)]
            command += ["--nproc-per-node", str(PER_NODE), "--node-rank", str(node)]
            command += ["--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "s2f", *fit]
            node_env = env
        else:  # what a scheduler sets on each node for Lightning's own launcher
            command = [sys.executable, "-m", "s2f", *fit]
            node_env = {**env, "NODE_RANK": str(node), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        log = open(run / f"node{node}.log", "a", encoding="utf-8")  # noqa: SIM115 - the child writes it
        nodes.append(subprocess.Popen(command, env=node_env, cwd=run, stdout=log, stderr=subprocess.STDOUT, text=True))
        log.close()
    return nodes


def _kill_node(process: subprocess.Popen[Any]) -> None:
    """SIGKILL to the launcher and every process below it, all at once, as when a machine goes down."""
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def _wait(nodes: list[subprocess.Popen[Any]]) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    try:
        return [node.wait(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                _kill_node(node)


def _records(run: Path) -> list[dict[str, Any]]:
    written = sorted(path.name for path in run.glob("rank*.json"))
    logs = "\n".join((run / f"node{node}.log").read_text()[-3000:] for node in range(NODES))
    assert written == [f"rank{rank}.json" for rank in range(WORLD)], f"a rank did not finish: {written}\n{logs}"
    return [json.loads((run / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def _train(shards: Path, run: Path, launcher: str) -> list[dict[str, Any]]:
    codes = _wait(_start_nodes(launcher, run, _fit_config(shards, run)))
    assert codes == [0] * NODES, (codes, (run / "node1.log").read_text()[-3000:])
    return _records(run)


def _train_clip_ids(shards: Path) -> list[str]:
    from s2f.data import iter_records

    return [record.clip_id for record in iter_records(shards, "train")]


@pytest.fixture(scope="module")
def torchrun_run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _train(shards, tmp_path_factory.mktemp("torchrun-2x2"), "torchrun")


def _assert_four_ranks_on_two_nodes_trained_as_one(records: list[dict[str, Any]], shards: Path) -> None:
    assert [r["global_rank"] for r in records] == list(range(WORLD))
    assert [(r["node_rank"], r["local_rank"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r["world_size"] == WORLD and r["num_nodes"] == NODES for r in records)
    assert all(r["global_step"] == EPOCHS * STEPS_PER_EPOCH for r in records)
    train_ids = _train_clip_ids(shards)
    assert len(train_ids) == 32
    orders = []
    for epoch in range(EPOCHS):
        per_rank = [[c for s in r["steps"] if s["epoch"] == epoch for c in s["clips"]] for r in records]
        assert [len(ids) for ids in per_rank] == [len(train_ids) // WORLD] * WORLD, per_rank
        # Each clip exactly once across the 4 ranks: no rank repeats one, no two ranks share one, none is missed.
        assert sorted(c for ids in per_rank for c in ids) == sorted(train_ids)
        orders.append(per_rank)
    assert orders[0] != orders[1], "the train split should be reshuffled every epoch"
    # DDP keeps the weights equal only if all 4 ranks, across both nodes, took part in every all-reduce.
    assert len({(r["weights_sum"], r["weights_abs_sum"]) for r in records}) == 1
    first, last = records[0]["steps"][0]["loss"], records[0]["steps"][-1]["loss"]
    assert last < first, (first, last)


@pytest.mark.slow
def test_torchrun_two_nodes_of_two_processes_see_every_clip_once_and_end_equal(
    shards: Path, torchrun_run: list[dict[str, Any]]
) -> None:
    _assert_four_ranks_on_two_nodes_trained_as_one(torchrun_run, shards)
    for record in torchrun_run:  # torchrun's own variables: the node is its group, Lightning read them
        environment = record["environment"]
        assert environment["GROUP_RANK"] == str(record["node_rank"]) and environment["WORLD_SIZE"] == str(WORLD)
        assert environment["MASTER_ADDR"] == "127.0.0.1"


@pytest.mark.slow
def test_lightnings_launcher_with_a_schedulers_node_variables_trains_two_nodes(
    shards: Path, tmp_path: Path, torchrun_run: list[dict[str, Any]]
) -> None:
    records = _train(shards, tmp_path, "lightning")
    _assert_four_ranks_on_two_nodes_trained_as_one(records, shards)
    assert [r["environment"]["NODE_RANK"] for r in records] == ["0", "0", "1", "1"]
    # The same seeds, clips and world: the same training as torchrun's, whichever launcher started it.
    assert [r["steps"] for r in records] == [r["steps"] for r in torchrun_run]
    assert records[0]["weights_sum"] == torchrun_run[0]["weights_sum"]


@pytest.mark.slow
def test_a_killed_node_restarted_with_ckpt_path_last_resumes_to_the_uninterrupted_weights(
    shards: Path, tmp_path: Path, torchrun_run: list[dict[str, Any]]
) -> None:
    # Each step waits 3 s after it ends, so node 1 dies with work left; the weights are untouched by it.
    nodes = _start_nodes("torchrun", tmp_path, _fit_config(shards, tmp_path, step_seconds=3.0))
    try:
        deadline = time.monotonic() + TIMEOUT
        while max((step for step, _ in read_steps(tmp_path / "steps.log")), default=-1) < KILL_AT:
            assert nodes[1].poll() is None, "node 1 stopped before it was killed"
            assert time.monotonic() < deadline, "the run never reached the step to kill it at"
            time.sleep(0.2)
        _kill_node(nodes[1])
        # Node 0's ranks lose their peers in the next all-reduce and fail; they must not hang.
        survivor = nodes[0].wait(timeout=TIMEOUT)
    finally:
        for node in nodes:
            if node.poll() is None:
                _kill_node(node)
    assert survivor != 0 and not list(tmp_path.glob("rank*.json")), "no rank may finish once a node is gone"
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()

    (tmp_path / "steps.log").unlink()
    codes = _wait(_start_nodes("torchrun", tmp_path, tmp_path / "overrides.yaml", "--ckpt_path", "last"))
    assert codes == [0] * NODES, (tmp_path / "node1.log").read_text()[-3000:]
    resumed = _records(tmp_path)
    # The restart began at the last checkpoint (step KILL_AT), not at 0, and took only the missing steps,
    # on the same clips and from the same weights as the uninterrupted run (the losses are equal to the bit).
    total = EPOCHS * STEPS_PER_EPOCH
    assert len({(r["weights_sum"], r["weights_abs_sum"]) for r in resumed}) == 1  # equal on every rank
    for record, reference in zip(resumed, torchrun_run, strict=True):
        assert [s["step"] for s in record["steps"]] == list(range(KILL_AT, total))
        assert record["steps"] == reference["steps"][KILL_AT:]
        # The final weights agree to rounding: DDP's first step after a start all-reduces in its initial
        # gradient buckets, later steps in buckets rebuilt in the order gradients arrived, and with 4 ranks
        # gloo's ring sums an element in an order that depends on where the bucket puts it (measured gap
        # 4e-10 relative). One step more or less moves these sums by far more than the bound (checked below).
        for key in ("weights_sum", "weights_abs_sum"):
            assert record[key] == pytest.approx(reference[key], rel=RESUME_GAP, abs=0)
    one_step = abs(torchrun_run[0]["weights_abs_sum"] - checkpoint_abs_sum(tmp_path / "checkpoints", KILL_AT))
    assert one_step > 1000 * RESUME_GAP * torchrun_run[0]["weights_abs_sum"], one_step


def _prepare(corpus: Path, out: Path, *compute: str, launcher: list[str] | None = None) -> list[str]:
    from helpers.corpus import cli_args

    command = ["-m", "s2f", "prepare", *cli_args(corpus, out), "--teacher", "dlib_resnet", "--no-progress"]
    return [*(launcher or []), *command, "--workers", "0", "--batch-size", "1", "--part-size", "2", *compute]


def _shard_files(root: Path) -> dict[str, Any]:
    """Every file of a shard root but prepare's own bookkeeping (``.s2f_prepare``), by its path: the bytes,
    and for litdata's ``index.json`` its content but the time it was written (``updated_at``)."""
    files = {}
    for path in root.rglob("*"):
        if path.is_file() and ".s2f_prepare" not in path.parts:
            content: Any = path.read_bytes()
            if path.name == "index.json":
                content = json.loads(content)
                assert content.pop("updated_at")
            files[str(path.relative_to(root))] = content
    return files


@pytest.mark.slow
def test_prepare_on_two_nodes_of_two_processes_writes_the_one_process_shard_root(tmp_path: Path) -> None:
    from helpers.corpus import build_corpus, records
    from s2f.prepare.parts import PartStore

    corpus = tmp_path / "corpus"
    build_corpus(corpus)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    one = subprocess.run(
        [sys.executable, *_prepare(corpus, tmp_path / "one", "--accelerator", "cpu", "--devices", "1")],
        env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    port = _free_port()
    compute = ["--accelerator", "cpu", "--devices", str(PER_NODE), "--num-nodes", str(NODES), "--strategy", "ddp"]
    nodes = []
    for node in range(NODES):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NODES)]
        torchrun += ["--nproc-per-node", str(PER_NODE), "--node-rank", str(node)]
        torchrun += ["--master-addr", "127.0.0.1", "--master-port", str(port)]
        log = open(tmp_path / f"node{node}.log", "w", encoding="utf-8")  # noqa: SIM115 - the child writes it
        command = _prepare(corpus, tmp_path / "multi", *compute, launcher=torchrun)
        nodes.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    codes = _wait(nodes)
    assert codes == [0] * NODES, (tmp_path / "node0.log").read_text()[-3000:]
    output = (tmp_path / "node0.log").read_text() + (tmp_path / "node1.log").read_text()
    assert output.count("s2f prepare:") == 1  # one summary, from global rank 0

    # All 4 ranks, on both nodes, prepared a share of the clips, each clip once.
    parts = PartStore(tmp_path / "multi").done_parts()
    assert {part.rank for part in parts} == set(range(WORLD))
    owners = [clip_id for part in parts for clip_id in part.clip_ids]
    assert len(owners) == len(set(owners))
    # The merged root holds the one-process run's rows, and its files (chunks, indexes, manifest, rejects)
    # are the same bytes (the indexes but their time stamps).
    assert sorted(records(tmp_path / "multi")) == sorted(records(tmp_path / "one")) and records(tmp_path / "one")
    merged, single = _shard_files(tmp_path / "multi"), _shard_files(tmp_path / "one")
    assert merged.keys() == single.keys() and any(name.endswith(".bin") for name in merged)
    assert [name for name in merged if merged[name] != single[name]] == []
