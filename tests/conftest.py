"""Shared fixtures. Tests never reach the network: hubs offline, W&B offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="s2f-wandb-"))

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def chunked_toy_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy shards (10 speakers x 4 clips, one held out) in small chunks, so splits across ranks and workers are real."""
    from s2f import TEACHERS
    from s2f.data import build_shards_from_pairs
    from s2f.data.toy import make_toy_corpus

    root = tmp_path_factory.mktemp("chunked")
    pairs = make_toy_corpus(root / "media", speakers=10, clips_per_speaker=4, held_out=1)
    build_shards_from_pairs(pairs, root / "shards", TEACHERS.create("vggface_tiny"), chunk_bytes="64KB")
    return root / "shards"
