"""Resumable output for ``s2f prepare``: work is written in *parts*, committed atomically, then assembled.

Layout of a shard root while and after ``s2f prepare`` runs::

    ROOT/s2f_shards.json                manifest (written last, by assembly)
    ROOT/{train,val,test}/index.json    merged litdata index over every committed part
    ROOT/{train,val,test}/chunk-P-K.bin chunk K of part P
    ROOT/rejects.jsonl                  one line per skipped clip
    ROOT/.s2f_prepare/settings.json     the settings every part was made with
    ROOT/.s2f_prepare/parts/P/          one part: a complete shard root of its own (ShardWriter)
    ROOT/.s2f_prepare/parts/P/done.json the commit record: clips written, clips rejected, timings

A part is a few hundred clips written by one rank. Its ``done.json`` is written last, atomically
(write a temporary file, ``fsync``, rename), so a part either is committed -- every clip it lists is
in its chunks -- or does not exist: a part folder without ``done.json`` is debris of a killed run and
is deleted. Which clips still need work is therefore ``input - clips listed in done.json files``,
whatever happened before; killed at any instant, a restart redoes at most the parts in flight.

Assembly moves each committed part's chunk files into the split folders under a name that holds
the part number, writes one ``index.json`` per split that lists them all, then the rejects file,
then the manifest. Moving is idempotent (a chunk is either still in its part or already at its
destination), the indexes and manifest are replaced atomically, and the manifest is removed before
any index changes, so a reader never sees a manifest that disagrees with the indexes.

Example:
    >>> import tempfile
    >>> store = PartStore(tempfile.mkdtemp())
    >>> store.check_settings({"teacher": "t"}, overwrite=False)
    >>> store.next_number(), store.done_parts()
    (0, [])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s2f._atomic import atomic_open
from s2f.errors import S2FError, ShardFormatError
from s2f.shards.format import INDEX_NAME, MANIFEST_NAME, SPLITS, ShardManifest, SplitInfo

from .rejects import Reject, write_rejects

__all__ = ["REJECTS_NAME", "STATE_DIR", "PartRecord", "PartStore"]

STATE_DIR = ".s2f_prepare"
REJECTS_NAME = "rejects.jsonl"
_SETTINGS = "settings.json"
_DONE = "done.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    # atomic_open names its temporary file per process and call: ranks that a launcher starts together
    # (torchrun, several nodes) all write the same settings at once. It fsyncs: a commit must survive a
    # crash of the machine, not only of the process.
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")


@dataclass
class PartRecord:
    """The commit record of one part (its ``done.json``).

    Attributes:
        number: Part number, unique within the root; also names its chunk files.
        written: ``clip_id -> split`` of every clip written into the part's chunks.
        speakers: ``speaker_id -> split`` of those clips.
        rejects: The clips of the part that were skipped, with their reasons.
        timings: Seconds spent per stage (``decode``, ``detect``, ``embed``, ``write``) on its clips.
        rank: The global rank that wrote it.
        finished: Unix time of the commit.
    """

    number: int
    written: dict[str, str] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rank: int = 0
    finished: float = 0.0

    @property
    def clip_ids(self) -> set[str]:
        """Every clip the part accounts for, written or rejected."""
        return set(self.written) | {reject.clip_id for reject in self.rejects}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejects"] = [asdict(reject) for reject in self.rejects]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartRecord:
        return cls(
            number=int(data["number"]),
            written=dict(data["written"]),
            speakers=dict(data["speakers"]),
            rejects=[Reject.from_json(item) for item in data["rejects"]],
            timings={str(k): float(v) for k, v in data.get("timings", {}).items()},
            rank=int(data.get("rank", 0)),
            finished=float(data.get("finished", 0.0)),
        )


class PartStore:
    """The parts of one shard root: settings, committed parts, new part folders, assembly.

    Args:
        root: The shard root (local or a shared file system every rank can reach).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        self.state = self.root / STATE_DIR
        self.parts = self.state / "parts"

    # ----------------------------------------------------------------------------------------- settings

    def clear(self) -> None:
        """Removes everything ``s2f prepare`` or a ShardWriter writes in the root (``--overwrite``)."""
        for name in (MANIFEST_NAME, REJECTS_NAME, STATE_DIR, *SPLITS):
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def check_settings(self, settings: dict[str, Any], *, overwrite: bool) -> None:
        """Starts a root, or checks that a resumed one was made with the same settings.

        Raises:
            S2FError: When the root holds shards from elsewhere, or parts made with other settings.
        """
        if overwrite:
            self.clear()
        settings_file = self.state / _SETTINGS
        if settings_file.is_file():
            with open(settings_file, encoding="utf-8") as handle:
                before = _current_keys(json.load(handle))
            normalised = json.loads(json.dumps(settings))
            changed = [key for key in sorted(set(before) | set(normalised)) if before.get(key) != normalised.get(key)]
            if changed:
                what = "; ".join(f"{key}: {before.get(key)!r} then, {normalised.get(key)!r} now" for key in changed)
                raise S2FError(
                    f"{self.root} was prepared with other settings ({what}); run with the same settings to "
                    "continue, or pass --overwrite to rebuild it (or choose another --out)"
                )
            return
        foreign = [name for name in (MANIFEST_NAME, *SPLITS) if (self.root / name).exists()]
        if foreign:
            raise S2FError(
                f"{self.root} already holds shards not made by a resumable `s2f prepare` ({', '.join(foreign)}); "
                "pass --overwrite to replace them or choose another --out"
            )
        self.parts.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(settings_file, settings)

    # ----------------------------------------------------------------------------------------- parts

    def done_parts(self) -> list[PartRecord]:
        """Every committed part, by number."""
        if not self.parts.is_dir():
            return []
        records = []
        for entry in sorted(self.parts.iterdir(), key=lambda p: (len(p.name), p.name)):
            done = entry / _DONE
            if entry.is_dir() and entry.name.isdigit() and done.is_file():
                with open(done, encoding="utf-8") as handle:
                    records.append(PartRecord.from_dict(json.load(handle)))
        return records

    def next_number(self) -> int:
        """The first part number above every committed part's."""
        return max((record.number for record in self.done_parts()), default=-1) + 1

    def part_dir(self, number: int) -> Path:
        return self.parts / str(number)

    def begin_part(self, number: int) -> Path:
        """An empty folder for part ``number`` (debris of an earlier attempt at it is removed)."""
        folder = self.part_dir(number)
        if (folder / _DONE).exists():
            raise RuntimeError(f"{folder} is already committed; part numbers must not be reused")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def commit_part(self, record: PartRecord) -> None:
        """Marks part ``record.number`` as done; its ShardWriter must have closed without error first."""
        record.finished = time.time()
        _write_json_atomic(self.part_dir(record.number) / _DONE, record.to_dict())

    def remove_debris(self) -> list[int]:
        """Deletes part folders that were never committed; returns their numbers."""
        removed = []
        if self.parts.is_dir():
            for entry in self.parts.iterdir():
                if entry.is_dir() and not (entry / _DONE).is_file():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(int(entry.name) if entry.name.isdigit() else -1)
        return sorted(removed)

    # ----------------------------------------------------------------------------------------- assembly

    @staticmethod
    def digest(parts: Sequence[PartRecord], rejects: Iterable[Reject]) -> str:
        """A fingerprint of what an assembly holds: the parts and the rejects found before decoding."""
        payload = json.dumps(
            [[p.number for p in parts], sorted((r.clip_id, r.reason, r.detail) for r in rejects)], sort_keys=True
        )
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()

    def read_manifest_extra(self) -> dict[str, Any]:
        """The ``prepare`` entry of the current manifest, or ``{}`` when there is no manifest."""
        path = self.root / MANIFEST_NAME
        if not path.is_file():
            return {}
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return dict(data.get("prepare", {}))

    def assemble(
        self,
        *,
        teacher: str,
        embed_dim: int,
        max_seconds: float,
        audio_codec: str,
        early_rejects: Sequence[Reject] = (),
        extra: dict[str, Any] | None = None,
    ) -> ShardManifest:
        """Merges every committed part into the root's split folders, rejects file and manifest.

        Args:
            teacher: Name of the teacher that made the embeddings.
            embed_dim: Their length.
            max_seconds: Longest clip kept.
            audio_codec: Audio codec of the rows.
            early_rejects: Clips rejected before decoding (media not found), which belong to no part.
            extra: Optional manifest keys (``landmarks``, ``prepare``).

        Raises:
            ShardFormatError: When a committed part's chunk file is gone, parts disagree on the row
                layout, or one clip appears in two parts.
        """
        self.remove_debris()
        parts = self.done_parts()
        owner: dict[str, int] = {}
        for part in parts:
            for clip_id in part.clip_ids:
                if clip_id in owner:
                    raise ShardFormatError(
                        f"{self.parts}: clip {clip_id!r} is in parts {owner[clip_id]} and {part.number}; "
                        "the shards are inconsistent: re-run with --overwrite"
                    )
                owner[clip_id] = part.number
        manifest_path = self.root / MANIFEST_NAME
        if manifest_path.exists():
            manifest_path.unlink()

        splits: dict[str, SplitInfo] = {}
        for split in SPLITS:
            clips = self._assemble_split(split, parts)
            split_dir = self.root / split
            if clips:
                speakers = {s for part in parts for s, where in part.speakers.items() if where == split}
                splits[split] = SplitInfo(clips=clips, speakers=len(speakers))
            elif split_dir.is_dir():
                shutil.rmtree(split_dir)

        rejects = sorted(
            [*(r for part in parts for r in part.rejects), *(r for r in early_rejects if r.clip_id not in owner)],
            key=lambda r: r.clip_id,
        )
        write_rejects(self.root / REJECTS_NAME, rejects)
        manifest = ShardManifest(
            root=str(self.root),
            teacher=teacher,
            embed_dim=embed_dim,
            splits=splits,
            max_seconds=max_seconds,
            audio_codec=audio_codec,
            extra=dict(extra or {}),
        )
        _write_json_atomic(manifest_path, manifest.to_dict())
        return manifest

    def _assemble_split(self, split: str, parts: Sequence[PartRecord]) -> int:
        """Moves the split's chunks of every part into ``ROOT/split`` and writes its index; returns its clips."""
        chunks: list[dict[str, Any]] = []
        config: dict[str, Any] | None = None
        target_dir = self.root / split
        expected = 0
        for part in parts:
            expected += sum(1 for where in part.written.values() if where == split)
            source_dir = self.part_dir(part.number) / split
            index_path = source_dir / INDEX_NAME
            if not index_path.is_file():
                continue
            with open(index_path, encoding="utf-8") as handle:
                index = json.load(handle)
            layout = {key: index["config"].get(key) for key in ("data_format", "data_spec")}
            if config is None:
                config = index["config"]
            elif layout != {key: config.get(key) for key in ("data_format", "data_spec")}:
                raise ShardFormatError(
                    f"{index_path}: part {part.number} stores rows in another layout than the parts before it; "
                    "re-run with --overwrite"
                )
            target_dir.mkdir(parents=True, exist_ok=True)
            for number, chunk in enumerate(index["chunks"]):
                name = f"chunk-{part.number}-{number}.bin"
                source, target = source_dir / chunk["filename"], target_dir / name
                if source.exists():
                    os.replace(source, target)
                elif not target.exists():
                    raise ShardFormatError(
                        f"{source}: chunk of committed part {part.number} is missing (and not at {target}); "
                        "data was deleted from the shard root: re-run with --overwrite"
                    )
                chunks.append({**chunk, "filename": name})
        total = sum(int(chunk["chunk_size"]) for chunk in chunks)
        if total != expected:
            raise ShardFormatError(
                f"{target_dir}: the parts' chunks hold {total} clips but their records list {expected}; "
                "re-run with --overwrite"
            )
        if chunks:
            assert config is not None
            index_file = target_dir / INDEX_NAME
            with atomic_open(index_file) as handle:
                json.dump({"chunks": chunks, "config": config, "updated_at": str(time.time())}, handle, sort_keys=True)
        return total


# Settings keys that s2f 0.1 wrote with British spelling: a root it started resumes under today's names.
_RENAMED_SETTINGS = {"centre_margin": "center_margin", "centre_y": "center_y"}


def _current_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_RENAMED_SETTINGS.get(key, key): _current_keys(item) for key, item in value.items()}
    return value
