"""``s2f prepare``: real videos (or audio + face image pairs) to training shards.

:func:`prepare` lists clips from :mod:`~s2f.prepare.sources` (AVSpeech CSV, VoxCeleb tree, a folder, a
manifest), decodes them (:mod:`~s2f.prepare.decode`), detects and aligns the speaker's face and embeds
it with the teacher in a Lightning ``predict`` loop (:mod:`~s2f.prepare.engine`), and writes resumable
parts (:mod:`~s2f.prepare.parts`) that become one shard root; every clip left out is a line of
``rejects.jsonl`` (:mod:`~s2f.prepare.rejects`). :func:`build_shards_from_pairs` builds shards from
audio + face image pairs (:mod:`~s2f.prepare.pairs`). :mod:`~s2f.prepare.options` holds ``prepare``'s
settings in four groups (decode, face, shards, compute).
"""

from __future__ import annotations

from .options import ComputeOptions, DecodeOptions, FaceOptions, PrepareOptions, ShardOptions
from .pairs import PairItem, build_shards_from_pairs, read_pairs_csv
from .run import plan_parts, prepare, resolve_splits
from .summary import STAGES, PrepareSummary

__all__ = [
    "STAGES",
    "ComputeOptions",
    "DecodeOptions",
    "FaceOptions",
    "PairItem",
    "PrepareOptions",
    "PrepareSummary",
    "ShardOptions",
    "build_shards_from_pairs",
    "plan_parts",
    "prepare",
    "read_pairs_csv",
    "resolve_splits",
]
