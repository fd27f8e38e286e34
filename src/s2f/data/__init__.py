"""Shards and streaming: the on-disk clip format, builders that fill it, and the Lightning datamodule.

``S2FDataModule`` is imported on first use, so tools that only read or write shards do not pay for
importing Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .pairs import PairItem, build_shards_from_pairs, read_pairs_csv
from .shards import (
    FORMAT_VERSION,
    ClipDataset,
    ClipRecord,
    ShardManifest,
    ShardWriter,
    SplitInfo,
    assign_split,
    iter_records,
    mean_embedding,
    read_manifest,
)

if TYPE_CHECKING:
    from .datamodule import S2FDataModule

__all__ = [
    "FORMAT_VERSION",
    "ClipDataset",
    "ClipRecord",
    "PairItem",
    "S2FDataModule",
    "ShardManifest",
    "ShardWriter",
    "SplitInfo",
    "assign_split",
    "build_shards_from_pairs",
    "iter_records",
    "mean_embedding",
    "read_manifest",
    "read_pairs_csv",
]


def __getattr__(name: str) -> Any:
    if name == "S2FDataModule":
        from .datamodule import S2FDataModule

        return S2FDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
