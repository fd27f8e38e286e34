"""Four ranks on two simulated nodes stream one shard root from an S3-compatible server process, and resume.

moto's server runs as a process of its own on a loopback port (:class:`helpers.streaming.MotoServerProcess`);
the test uploads the chunked toy shards (32 training clips in chunks of 64 kB) to it with boto3. Then
``s2f fit`` (the debug recipe) runs as 2 torchrun nodes x 2 processes with ``--data.init_args.data_dir
s3://...``, each node with a chunk cache folder of its own, as nodes have their own local disks. Batches of 2
clips: 4 steps an epoch, 2 epochs. Each rank loads in its own process (``num_workers: 0``; litdata's
downloader threads fetch the chunks): a loader worker forked from a DDP rank hung now and then on this
machine's Python 3.11.7, in the child's ``PyOS_AfterFork_Child`` waiting for the interpreter's HEAD_LOCK,
which another thread held at the fork (CPython gh-112275, fixed in later releases).

Three runs: an uninterrupted one; one killed (every process of both nodes, SIGKILL, as when a job is
preempted) once step 6 (the second epoch's third step) has begun, its checkpoint of step 6 written; and
that one restarted with ``--ckpt_path last`` on the same cache folders, which hold what the killed run left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.fit import RECIPE, checkpoint_abs_sum, read_steps, weights
from helpers.processes import descendants
from helpers.streaming import MotoServerProcess, free_port, read_journal, upload_tree

pytest.importorskip("moto.server")

ROOT = Path(__file__).resolve().parents[2]
BUCKET, PREFIX = "s2f-ranks", "corpora/toy-chunked"
NODES, PER_NODE = 2, 2
WORLD = NODES * PER_NODE
BATCH, EPOCHS, STEPS_PER_EPOCH = 2, 2, 4  # 32 train clips / (4 ranks x 2 clips)
KILL_AT = 6  # the second epoch's third step: two of its four steps are in the checkpoint
TIMEOUT = 300
# Relative gap allowed between the resumed and the uninterrupted final weights (see the resume test).
RESUME_GAP = 1e-7
# Relative gap allowed between the losses of the resumed steps after the first and the uninterrupted run's.
LOSS_GAP = 1e-6

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def remote_root(chunked_toy_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``s3://`` URL of the chunked toy shards, uploaded to a moto server process that lives for this module."""
    import boto3

    logs = tmp_path_factory.mktemp("moto")
    with MotoServerProcess(logs / "server.log") as endpoint, pytest.MonkeyPatch.context() as env:
        # The ranks inherit these: the endpoint and credentials, as on a cluster.
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        assert upload_tree(chunked_toy_shards, BUCKET, PREFIX) > 4  # manifest, indexes and several chunks
        yield f"s3://{BUCKET}/{PREFIX}"


def _fit_config(url: str, run: Path, name: str, step_seconds: float) -> Path:
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(run / "checkpoints"), "save_last": True, "save_top_k": -1}
            | {"every_n_train_steps": 1},
        },
        {
            "class_path": "helpers.streaming.StepJournal",
            "init_args": {"out_dir": str(run / name), "step_seconds": step_seconds},
        },
        {"class_path": "helpers.fit.StepLog", "init_args": {"path": str(run / name / "started.log")}},
    ]
    overrides = {
        "trainer": {"max_epochs": EPOCHS, "limit_val_batches": 0, "num_sanity_val_steps": 0, "logger": False}
        | {"default_root_dir": str(run), "callbacks": callbacks},
        "data": {"init_args": {"data_dir": url, "batch_size": BATCH, "num_workers": 0, "clip_seconds": 1.0}},
    }
    (run / name).mkdir(parents=True, exist_ok=True)
    config = run / name / "overrides.yaml"
    config.write_text(yaml.safe_dump(overrides))
    return config


def _start_nodes(run: Path, config: Path, *extra: str) -> list[subprocess.Popen[str]]:
    """Both torchrun nodes, each with its own chunk cache (``run/cache{N}``); output to ``config``'s folder."""
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    }
    nodes = []
    for node in range(NODES):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NODES)]
        command += ["--nproc-per-node", str(PER_NODE), "--node-rank", str(node)]
        command += ["--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "s2f", "fit"]
        command += ["--config", str(RECIPE), "--config", str(config)]
        command += ["--trainer.num_nodes", str(NODES), "--trainer.devices", str(PER_NODE)]
        command += ["--data.init_args.cache_dir", str(run / f"cache{node}"), *extra]
        log = open(config.parent / f"node{node}.log", "a", encoding="utf-8")  # noqa: SIM115 - the child writes it
        nodes.append(subprocess.Popen(command, env=env, cwd=run, stdout=log, stderr=subprocess.STDOUT, text=True))
        log.close()
    return nodes


def _kill(nodes: list[subprocess.Popen[Any]]) -> None:
    """SIGKILL to every launcher and every process below them, all at once: the job is preempted."""
    pids = [pid for node in nodes for pid in [node.pid, *descendants(node.pid)]]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for node in nodes:
        node.wait()


def _run(run: Path, config: Path, *extra: str) -> list[dict[str, Any]]:
    """Starts both nodes, waits for them to succeed, and returns every rank's record."""
    nodes = _start_nodes(run, config, *extra)
    deadline = time.monotonic() + TIMEOUT
    try:
        codes = [node.wait(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]
    finally:
        _kill([node for node in nodes if node.poll() is None])
    logs = "\n".join((config.parent / f"node{node}.log").read_text()[-3000:] for node in range(NODES))
    assert codes == [0] * NODES, logs
    written = sorted(path.name for path in config.parent.glob("rank*.json"))
    assert written == [f"rank{rank}.json" for rank in range(WORLD)], f"a rank did not finish: {written}\n{logs}"
    return [json.loads((config.parent / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def _train_clip_ids(shards: Path) -> list[str]:
    from s2f.data import iter_records

    return [record.clip_id for record in iter_records(shards, "train")]


def _epoch_clips(steps_per_rank: list[list[dict[str, Any]]], epoch: int) -> list[list[str]]:
    return [[clip for step in steps if step["epoch"] == epoch for clip in step["clips"]] for steps in steps_per_rank]


@pytest.fixture(scope="module")
def uninterrupted(remote_root: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    run = tmp_path_factory.mktemp("s3-2x2")
    return _run(run, _fit_config(remote_root, run, "records", step_seconds=0.0))


def test_four_ranks_on_two_nodes_stream_every_clip_once_per_epoch_and_end_equal(
    uninterrupted: list[dict[str, Any]], chunked_toy_shards: Path
) -> None:
    records = uninterrupted
    assert [(r["global_rank"], r["node_rank"], r["local_rank"]) for r in records] == [
        (0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1),
    ]  # fmt: skip
    assert all(r["world_size"] == WORLD and r["global_step"] == EPOCHS * STEPS_PER_EPOCH for r in records)
    train_ids = _train_clip_ids(chunked_toy_shards)
    assert len(train_ids) == 32
    orders = []
    for epoch in range(EPOCHS):
        per_rank = _epoch_clips([r["steps"] for r in records], epoch)
        assert [len(ids) for ids in per_rank] == [BATCH * STEPS_PER_EPOCH] * WORLD, per_rank
        # Each clip exactly once across the 4 ranks: none repeated, none shared, none missed.
        assert sorted(c for ids in per_rank for c in ids) == sorted(train_ids)
        orders.append(per_rank)
    assert orders[0] != orders[1], "the train split should be reshuffled every epoch"
    # DDP keeps the weights equal only if all 4 ranks took part in every all-reduce.
    assert len({(r["weights_sum"], r["weights_abs_sum"]) for r in records}) == 1


def test_a_run_killed_mid_epoch_resumes_from_s3_on_every_clip_once_to_the_uninterrupted_weights(
    remote_root: str, uninterrupted: list[dict[str, Any]], chunked_toy_shards: Path, tmp_path: Path
) -> None:
    # Each step waits 2 s after it ends, so the kill lands while step KILL_AT runs.
    killed = _fit_config(remote_root, tmp_path, "killed", step_seconds=2.0)
    nodes = _start_nodes(tmp_path, killed)
    try:
        deadline = time.monotonic() + TIMEOUT
        while max((step for step, _ in read_steps(killed.parent / "started.log")), default=-1) < KILL_AT:
            assert all(node.poll() is None for node in nodes), (killed.parent / "node0.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the step to kill it at"
            time.sleep(0.2)
    finally:
        _kill(nodes)
    assert not list(killed.parent.glob("rank*.json")), "no rank may finish before the kill"
    # A rank begins a step only after rank 0 wrote the previous step's checkpoint (a barrier follows each save).
    checkpoint_step, _ = weights(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint_step == KILL_AT
    for node in range(NODES):  # each node downloaded into its own cache, which the restart reuses as it was left
        assert list((tmp_path / f"cache{node}").rglob("index.json")), f"node {node} downloaded nothing"

    resumed = _run(tmp_path, _fit_config(remote_root, tmp_path, "resumed", step_seconds=0.0), "--ckpt_path", "last")
    before_kill = [
        [step for step in read_journal(killed.parent / f"rank{rank}.steps.jsonl") if step["step"] < KILL_AT]
        for rank in range(WORLD)
    ]
    train_ids = _train_clip_ids(chunked_toy_shards)
    epoch = KILL_AT // STEPS_PER_EPOCH
    # The interrupted epoch, its steps before the checkpoint and after the restart together: each clip once.
    joined = [before + after["steps"] for before, after in zip(before_kill, resumed, strict=True)]
    per_rank = _epoch_clips(joined, epoch)
    assert sorted(c for ids in per_rank for c in ids) == sorted(train_ids), per_rank
    for rank, (record, reference) in enumerate(zip(resumed, uninterrupted, strict=True)):
        # The killed run, up to its checkpoint, took the uninterrupted run's steps: clips and losses to the bit.
        assert before_kill[rank] == reference["steps"][:KILL_AT]
        # The restart took only the missing steps, on the same clips. Its first loss is the uninterrupted
        # run's to the bit (the checkpoint's weights, the same clips); later ones start from weights that
        # differ by the rounding described below, and agree within a few float32 ulps (one is 1.2e-7 relative).
        steps, expected = record["steps"], reference["steps"][KILL_AT:]
        assert [(s["epoch"], s["step"], s["clips"]) for s in steps] == [
            (s["epoch"], s["step"], s["clips"]) for s in expected
        ]
        assert [s["step"] for s in steps] == list(range(KILL_AT, EPOCHS * STEPS_PER_EPOCH))
        assert steps[0]["loss"] == expected[0]["loss"]
        assert [s["loss"] for s in steps] == pytest.approx([s["loss"] for s in expected], rel=LOSS_GAP, abs=0)
    assert len({(r["weights_sum"], r["weights_abs_sum"]) for r in resumed}) == 1  # equal on every rank
    # The final weights agree to rounding, not to the bit: DDP's first step after a start all-reduces in its
    # initial gradient buckets, later steps in buckets rebuilt in the order gradients arrived, and gloo's ring
    # over 4 ranks sums an element in an order that depends on where its bucket puts it (tests/train/test_multinode.py
    # measured 4e-10 relative). One step more or less moves these sums by far more than the bound (checked below).
    for key in ("weights_sum", "weights_abs_sum"):
        assert resumed[0][key] == pytest.approx(uninterrupted[0][key], rel=RESUME_GAP, abs=0)
    one_step = abs(uninterrupted[0]["weights_abs_sum"] - checkpoint_abs_sum(tmp_path / "checkpoints", KILL_AT))
    assert one_step > 1000 * RESUME_GAP * uninterrupted[0]["weights_abs_sum"], one_step
