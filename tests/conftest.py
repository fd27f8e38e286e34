"""Shared fixtures. Tests never reach the network: hubs offline, W&B offline."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="s2f-wandb-"))

import pytest
import torch

from helpers.shards import ShardFactory

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shard_factory(tmp_path_factory: pytest.TempPathFactory) -> ShardFactory:
    """The one source of test shards: each kind built once per session, shared read-only by every module."""
    return ShardFactory(tmp_path_factory)


@pytest.fixture
def writable_shards(tmp_path: Path) -> Callable[[Path], Path]:
    """Copies a shared shard root into this test's own folder, for a test that changes files in it."""

    def copy(root: Path) -> Path:
        return Path(shutil.copytree(root, tmp_path / f"{root.name}-copy"))

    return copy


@pytest.fixture(scope="session")
def chunked_toy_shards(shard_factory: ShardFactory) -> Path:
    """Toy shards (10 speakers x 4 clips, one held out) in small chunks, so splits across ranks and workers are real."""
    return shard_factory.toy(speakers=10, clips_per_speaker=4, held_out=1, chunk_bytes="64KB")
