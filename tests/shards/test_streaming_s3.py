"""Shards in object storage: a real S3-compatible server (moto's) on loopback, not a mock object.

The test writes shards, uploads them with boto3, then reads them back through the same code paths
training uses (manifest, pickle check of the index, litdata streaming with worker processes).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fit import quiet_trainer
from helpers.shards import ShardFactory, random_record, write_shards
from s2f.data import S2FDataModule, iter_records, read_manifest
from s2f.errors import ShardFormatError
from s2f.shards import ClipRecord

pytest.importorskip("moto.server")

BUCKET = "s2f-test"
PREFIX = "corpora/toy"
D = 64  # vggface_tiny's embedding size, so the system can train on these shards


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        yield endpoint
    server.stop()


def _upload(root: Path, url_prefix: str) -> None:
    import boto3

    client = boto3.client("s3")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{url_prefix}/{path.relative_to(root).as_posix()}")


def _rows(folder: Path) -> Path:
    """28 clips of 7 speakers (5 train, 1 val, 1 test) of 0.25 to 1.5 s, with landmarks and metadata."""
    rng = np.random.default_rng(3)
    records = (
        random_record(
            rng,
            f"clip{index:02d}",
            f"spk{index // 4}",
            int(rng.integers(4_000, 24_000)),
            embed_dim=D,
            split="train" if index // 4 < 5 else "val" if index // 4 == 5 else "test",
            num_landmarks=5,
            metadata={"gender": "f" if index // 4 % 2 else "m", "index": index},
        )
        for index in range(28)
    )
    return write_shards(folder / "shards", records, teacher="vggface_tiny", embed_dim=D, chunk_bytes="64KB")


@pytest.fixture(scope="module")
def shards(s3_endpoint: str, shard_factory: ShardFactory) -> tuple[Path, str]:
    import boto3

    local = shard_factory.build("s3-rows", _rows)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _upload(local, PREFIX)
    return local, f"s3://{BUCKET}/{PREFIX}"


def _same_record(a: ClipRecord, b: ClipRecord) -> None:
    assert (a.clip_id, a.speaker_id, a.split, a.source_video) == (b.clip_id, b.speaker_id, b.split, b.source_video)
    assert (a.source_start, a.source_end, a.frame_time, a.metadata) == (
        b.source_start,
        b.source_end,
        b.frame_time,
        b.metadata,
    )
    for field in ("audio", "face", "embedding", "landmarks"):
        left, right = getattr(a, field), getattr(b, field)
        assert left.dtype == right.dtype and np.array_equal(left, right), (a.clip_id, field)


@pytest.mark.slow
def test_every_record_reads_back_identically_from_s3(shards: tuple[Path, str], tmp_path: Path) -> None:
    local, url = shards
    remote_manifest = read_manifest(url)
    assert remote_manifest.root == url
    assert remote_manifest.to_dict() == read_manifest(local).to_dict()
    for split in ("train", "val", "test"):
        remote = list(iter_records(url, split, cache_dir=str(tmp_path / split)))
        stored = list(iter_records(local, split))
        assert len(remote) == len(stored) == remote_manifest.splits[split].clips
        for a, b in zip(remote, stored, strict=True):
            _same_record(a, b)
    # Downloads went into the cache folder we named (litdata deletes each chunk once it is read).
    assert list(tmp_path.glob("train/**/index.json"))


@pytest.mark.slow
def test_datamodule_streams_s3_through_worker_processes_like_local_disk(
    shards: tuple[Path, str], tmp_path: Path
) -> None:
    local, url = shards

    def batches(data_dir: str, cache: str | None) -> list[dict]:
        datamodule = S2FDataModule(
            data_dir, batch_size=4, num_workers=2, clip_seconds=1.0, seed=9, drop_last=False, cache_dir=cache
        )
        datamodule.setup("fit")
        return list(datamodule.train_dataloader())

    remote, stored = batches(url, str(tmp_path / "cache")), batches(str(local), None)
    ids = [clip for batch in remote for clip in batch["clip_id"]]
    assert sorted(ids) == [f"clip{i:02d}" for i in range(20)]  # each train clip exactly once
    assert ids == [clip for batch in stored for clip in batch["clip_id"]]  # the same shuffled order
    for a, b in zip(remote, stored, strict=True):
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["embedding"], b["embedding"])


@pytest.mark.slow
def test_training_runs_from_s3(shards: tuple[Path, str], tmp_path: Path) -> None:
    from s2f.train import Speech2FaceSystem

    _, url = shards
    datamodule = S2FDataModule(url, batch_size=4, clip_seconds=1.0, cache_dir=str(tmp_path / "cache"))
    trainer = quiet_trainer(tmp_path, max_steps=3, val_check_interval=3, limit_val_batches=1)
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    before = [p.detach().clone() for p in system.encoder.parameters()]
    trainer.fit(system, datamodule)
    assert trainer.global_step == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, system.encoder.parameters(), strict=True))
    assert "val/loss" in trainer.callback_metrics


def test_bad_s3_roots_are_one_line_errors(s3_endpoint: str, shards: tuple[Path, str], tmp_path: Path) -> None:
    import boto3

    missing = f"s3://{BUCKET}/nothing-here"
    with pytest.raises(ShardFormatError, match=f"{missing}/s2f_shards.json does not exist") as error:
        read_manifest(missing)
    assert "\n" not in str(error.value)

    # A copy whose train index asks litdata to unpickle rows: refused before any row is read.
    local, _ = shards
    client = boto3.client("s3")
    client.upload_file(str(local / "s2f_shards.json"), BUCKET, "evil/s2f_shards.json")
    index = json.loads((local / "train" / "index.json").read_text())
    index["config"]["data_format"] = ["pickle"]
    client.put_object(Bucket=BUCKET, Key="evil/train/index.json", Body=json.dumps(index).encode())
    with pytest.raises(ShardFormatError, match="unpickled"):
        S2FDataModule(f"s3://{BUCKET}/evil", cache_dir=str(tmp_path)).train_dataloader()
    # The val index was never uploaded: an incomplete copy.
    with pytest.raises(ShardFormatError, match="upload is incomplete"):
        S2FDataModule(f"s3://{BUCKET}/evil", cache_dir=str(tmp_path)).val_dataloader()
