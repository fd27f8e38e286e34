"""The public data API: reading and writing shards, building them from pairs, and the datamodule.

The code lives in :mod:`s2f.shards` (the format), :mod:`s2f.prepare` (builders) and :mod:`s2f.train`
(the datamodule); this package re-exports the names users reach for. ``S2FDataModule`` is imported on
first use, so tools that only read or write shards do not pay for importing Lightning. The modules that
used to live here (``s2f.data.shards``, ``s2f.data.prepare``, ...) still import, with a
DeprecationWarning naming their new home (stub files listed in :mod:`s2f._compat.moved`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from s2f.prepare.pairs import PairItem, build_shards_from_pairs, read_pairs_csv
from s2f.shards import (
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
    from s2f.train.datamodule import S2FDataModule

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
        from s2f.train.datamodule import S2FDataModule

        return S2FDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
