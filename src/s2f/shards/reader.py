"""Reading shards: the manifest, the pickle-free index check, and the rows as records or a streaming dataset."""

from __future__ import annotations

import bisect
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from litdata.streaming.sampler import ChunkedIndex

from s2f._version import __version__
from s2f.errors import ShardFormatError, first_line

from .codec import _decode_audio, _decode_face
from .format import (
    _ALLOWED_FORMATS,
    _MANIFEST_KEYS,
    AUDIO_CODECS,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    MANIFEST_NAME,
    SPLITS,
    ClipRecord,
    ShardManifest,
    SplitInfo,
    _is_url,
    _join,
    _root_str,
    _serializers,
)
from .integrity import check_counts, read_index, verify_chunk
from .remote import RemoteFileNotFound, allow_plain_http_endpoint, read_remote_text

__all__ = ["ClipDataset", "iter_records", "mean_embedding", "read_embeddings", "read_manifest"]

# --------------------------------------------------------------------------------------------- manifest


def _manifest_error(path: str, problem: str) -> ShardFormatError:
    return ShardFormatError(f"{path}: {problem}; re-run `s2f prepare` to rebuild the shards")


def read_manifest(root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> ShardManifest:
    """Reads and checks ``ROOT/s2f_shards.json``.

    Args:
        root: A shard root written by :class:`ShardWriter`: a local path, or a URL. ``s3://`` needs only
            boto3 (endpoint and credentials from the usual ``AWS_*`` settings); other schemes need their
            fsspec backend.
        storage_options: Options for the object-store client (litdata's ``storage_options``), e.g.
            ``{"endpoint_url": "http://minio:9000"}``; ignored for local paths.

    Returns:
        The manifest.

    Raises:
        ShardFormatError: One line naming the path and the fix, when the root or its manifest is
            missing, the manifest is malformed, or its format version is not :data:`FORMAT_VERSION`.
    """
    root_s = _root_str(root)
    path = _join(root_s, MANIFEST_NAME)
    text = _read_manifest_text(root_s, path, storage_options)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _manifest_error(path, f"not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict):
        raise _manifest_error(path, "not a JSON object")
    if data.get("format") != FORMAT_NAME:
        raise ShardFormatError(
            f"{path}: format is {data.get('format')!r}, not {FORMAT_NAME!r}, so this is not an s2f shard manifest; "
            "point s2f at a folder written by `s2f prepare`"
        )
    version = data.get("version")
    if version != FORMAT_VERSION:
        writer = data.get("s2f_version", "an unknown s2f")
        raise ShardFormatError(
            f"{path}: written by s2f {writer} with shard format version {version}; this s2f ({__version__}) "
            f"reads format version {FORMAT_VERSION}: re-run `s2f prepare` or upgrade s2f"
        )
    try:
        splits = {
            str(name): SplitInfo(clips=int(info["clips"]), speakers=int(info["speakers"]))
            for name, info in dict(data["splits"]).items()
        }
        manifest = ShardManifest(
            root=root_s,
            teacher=str(data["teacher"]),
            embed_dim=int(data["embed_dim"]),
            splits=splits,
            sample_rate=int(data["sample_rate"]),
            max_seconds=float(data["max_seconds"]),
            audio_codec=str(data["audio_codec"]),
            face_size=int(data["face_size"]),
            s2f_version=str(data.get("s2f_version", "0+unknown")),
            extra={key: value for key, value in data.items() if key not in _MANIFEST_KEYS},
        )
    except KeyError as err:
        raise _manifest_error(path, f"missing field {err.args[0]!r}") from err
    except (TypeError, ValueError) as err:
        raise _manifest_error(path, f"malformed field ({err})") from err
    if manifest.audio_codec not in AUDIO_CODECS:
        raise _manifest_error(path, f"unknown audio_codec {manifest.audio_codec!r} (expected one of {AUDIO_CODECS})")
    unknown = sorted(set(manifest.splits) - set(SPLITS))
    if unknown:
        raise _manifest_error(path, f"unknown splits {unknown} (expected some of {list(SPLITS)})")
    return manifest


def _read_manifest_text(root: str, path: str, storage_options: Mapping[str, Any] | None = None) -> str:
    if _is_url(root):
        try:
            return read_remote_text(path, storage_options)
        except RemoteFileNotFound as err:
            raise ShardFormatError(
                f"{path} does not exist: {root} is not an s2f shard root; run `s2f prepare` or fix the path"
            ) from err
        except (ImportError, ValueError) as err:
            raise ShardFormatError(
                f"{path}: cannot open this URL ({first_line(err)}); install the fsspec backend for it (e.g. gcsfs)"
            ) from err
        except OSError as err:
            raise ShardFormatError(
                f"{path}: cannot read it ({first_line(err)}); check the endpoint (AWS_ENDPOINT_URL) and credentials"
            ) from err
    if not os.path.isdir(root):
        raise ShardFormatError(
            f"{root}: shard directory does not exist; run `s2f prepare` to create it or fix the path"
        )
    if not os.path.isfile(path):
        raise ShardFormatError(
            f"{path} does not exist: {root} is not an s2f shard root (or `s2f prepare` did not finish); "
            "run `s2f prepare` to (re)build it"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise _manifest_error(path, f"cannot read it as UTF-8 text ({first_line(err)})") from None


def _split_dir(manifest: ShardManifest, split: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """Directory of ``split``, after checking it exists; one-line error otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if split not in manifest.splits:
        present = ", ".join(manifest.splits) or "none"
        raise ShardFormatError(
            f"{manifest.root} has no {split!r} split (splits on disk: {present}); "
            f"re-run `s2f prepare` with speakers assigned to {split!r} or read another split"
        )
    path = _join(manifest.root, split)
    if not _is_url(path) and not os.path.isfile(os.path.join(path, INDEX_NAME)):
        raise ShardFormatError(
            f"{os.path.join(path, INDEX_NAME)} is missing although the manifest lists split {split!r}; "
            "the shards are incomplete: re-run `s2f prepare`"
        )
    if _is_url(path):
        _check_remote_index(path, storage_options)
    else:
        _check_index(path)
        check_counts(path, read_index(path), manifest.splits[split].clips)
    return path


def _check_index(split_dir: str) -> None:
    """Refuses an index whose rows would need a serializer outside the fixed, pickle-free set.

    Reading such rows would unpickle whatever the file holds, so shards from elsewhere are checked too.
    """
    index = os.path.join(split_dir, INDEX_NAME)
    try:
        with open(index, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShardFormatError(
            f"{index}: not a readable litdata index ({first_line(exc)}); re-run `s2f prepare`"
        ) from None
    _check_index_text(index, text)


def _check_remote_index(split_url: str, storage_options: Mapping[str, Any] | None) -> None:
    """:func:`_check_index` for a split in object storage: the same pickle check, before litdata reads a row."""
    index = _join(split_url, INDEX_NAME)
    try:
        text = read_remote_text(index, storage_options)
    except RemoteFileNotFound:
        raise ShardFormatError(
            f"{index} is missing although the manifest lists this split; the upload is incomplete: "
            "copy the whole shard root again"
        ) from None
    except (ImportError, ValueError, OSError) as exc:
        raise ShardFormatError(
            f"{index}: cannot read it ({first_line(exc)}); check the endpoint (AWS_ENDPOINT_URL) and credentials"
        ) from None
    _check_index_text(index, text)


def _check_index_text(index: str, text: str) -> None:
    try:
        formats = json.loads(text)["config"]["data_format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardFormatError(
            f"{index}: not a readable litdata index ({first_line(exc)}); re-run `s2f prepare`"
        ) from None
    bad = [name for name in formats if str(name).split(":", 1)[0] not in _ALLOWED_FORMATS]
    if bad:
        raise ShardFormatError(
            f"{index}: rows are stored as {bad}, which would be unpickled; s2f reads only {list(_ALLOWED_FORMATS)}"
        )


# --------------------------------------------------------------------------------------------- readers


def _record_from_row(row: Mapping[str, Any], codec: str) -> ClipRecord:
    clip_id = str(row["clip_id"])
    return ClipRecord(
        clip_id=clip_id,
        speaker_id=str(row["speaker_id"]),
        audio=_decode_audio(row["audio"], codec, int(row["num_samples"]), clip_id),
        face=_decode_face(row["face"]),
        embedding=np.asarray(row["embedding"], dtype=np.float16),
        landmarks=np.asarray(row["landmarks"], dtype=np.float32).reshape(-1, 2),
        split=str(row["split"]),
        source_video=str(row["source_video"]),
        source_start=float(row["source_start"]),
        source_end=float(row["source_end"]),
        frame_time=float(row["frame_time"]),
        metadata=json.loads(row["metadata"]),
    )


def iter_records(root: str | os.PathLike[str], split: str, **streaming_kwargs: Any) -> Iterator[ClipRecord]:
    """Reads every clip of one split in stored order, fully decoded (int16 audio, uint8 face).

    Meant for tools and tests; training reads through :class:`ClipDataset`.

    Args:
        root: Shard root (local path or URL).
        split: ``"train"``, ``"val"`` or ``"test"``.
        **streaming_kwargs: Passed to :class:`~litdata.StreamingDataset` (``cache_dir`` and
            ``storage_options`` for object storage).

    Raises:
        ShardFormatError: When the root, its manifest or the split is missing or incompatible.
    """
    manifest, dataset = _stored_rows(root, split, streaming_kwargs)
    for index in range(len(dataset)):
        yield _record_from_row(dataset[index], manifest.audio_codec)


def mean_embedding(
    root: str | os.PathLike[str], split: str = "train", *, max_clips: int = 10_000, **streaming_kwargs: Any
) -> torch.Tensor:
    """The mean teacher embedding [D] of the first ``max_clips`` clips of one split (float32).

    Reads only the embeddings: no audio or face is decoded.

    Raises:
        ShardFormatError: When the split is missing or holds no clips.
    """
    _, dataset = _stored_rows(root, split, streaming_kwargs)
    count = min(len(dataset), max_clips)
    if count == 0:
        raise ShardFormatError(f"{root}: split {split!r} holds no clips, so it has no mean embedding")
    total = sum(np.asarray(dataset[index]["embedding"], dtype=np.float64) for index in range(count))
    return torch.from_numpy(total / count).float()


def read_embeddings(
    root: str | os.PathLike[str], split: str, *, max_clips: int = 20_000, **streaming_kwargs: Any
) -> tuple[torch.Tensor, list[str], list[dict[str, Any]]]:
    """The teacher embeddings [N, D] (float32), speaker ids and metadata of up to ``max_clips`` clips of one
    split, spread evenly over it in stored order.

    Reads the stored rows without decoding audio or faces (50 ms instead of seconds for a thousand clips).
    A split with no clips gives an empty ``[0, 0]`` tensor and empty lists.

    Raises:
        ShardFormatError: When the root, its manifest or the split is missing or incompatible.
    """
    _, rows = _stored_rows(root, split, streaming_kwargs)
    picked = np.unique(np.linspace(0, len(rows) - 1, num=min(len(rows), max_clips)).round().astype(int))
    embeddings, speakers, metadata = [], [], []
    for index in picked.tolist() if len(rows) else []:
        row = rows[index]
        embeddings.append(np.asarray(row["embedding"], dtype=np.float32))
        speakers.append(str(row["speaker_id"]))
        metadata.append(json.loads(row["metadata"]))
    if not embeddings:
        return torch.zeros(0, 0), [], []
    return torch.from_numpy(np.stack(embeddings)), speakers, metadata


class VerifiedRows(StreamingDataset):
    """A litdata dataset that verifies each local chunk (size, rows, checksum) the first time a row of it is read.

    Each DataLoader worker verifies the chunks it reads, once; rows of object-storage roots are not
    verified here (``s2f check`` on a local copy does it).
    """

    def __init__(self, split_dir: str, **streaming_kwargs: Any) -> None:
        super().__init__(split_dir, **streaming_kwargs)
        self._local_split = None if _is_url(split_dir) else split_dir
        chunks = read_index(split_dir)["chunks"] if self._local_split else []
        self._chunks: list[dict[str, Any]] = chunks
        self._chunk_ends = list(itertools.accumulate(int(chunk["chunk_size"]) for chunk in chunks))
        self._verified_chunks: set[int] = set()

    def _verify_once(self, index: Any) -> None:
        if self._local_split is None:
            return
        if isinstance(index, ChunkedIndex):
            chunk = index.chunk_index
        elif isinstance(index, int):  # a global row number, in stored order
            chunk = bisect.bisect_right(self._chunk_ends, index)
        else:
            return
        if chunk not in self._verified_chunks and 0 <= chunk < len(self._chunks):
            verify_chunk(self._local_split, self._chunks[chunk])
            self._verified_chunks.add(chunk)

    def __getitem__(self, index: Any) -> Any:
        self._verify_once(index)
        return super().__getitem__(index)


def _stored_rows(
    root: str | os.PathLike[str], split: str, streaming_kwargs: dict[str, Any]
) -> tuple[ShardManifest, VerifiedRows]:
    """The manifest and the undecoded rows of one split, in stored order."""
    storage_options = streaming_kwargs.get("storage_options")
    manifest = read_manifest(root, storage_options)
    if _is_url(manifest.root):
        allow_plain_http_endpoint(storage_options)
    streaming_kwargs.setdefault("serializers", _serializers())
    return manifest, VerifiedRows(_split_dir(manifest, split, storage_options), shuffle=False, **streaming_kwargs)


class ClipDataset(VerifiedRows):
    """One split of a shard root as a litdata :class:`~litdata.StreamingDataset` of decoded clips.

    litdata spreads chunks over ranks and DataLoader workers, shuffles chunks and the rows within
    them, and can resume mid-epoch through :class:`~litdata.StreamingDataLoader`'s state.

    Each item is a dict: ``clip_id`` (str), ``speaker_id`` (str), ``audio`` (float32 tensor [T] in
    [-1, 1], T <= max_seconds * 16000), ``embedding`` (float32 tensor [D]), ``landmarks`` (float32
    tensor [K, 2]), ``metadata`` (dict), and ``face`` (uint8 tensor [3, 224, 224]) when
    ``decode_faces`` is set (JPEG decoding costs CPU the voice encoder does not need).

    Args:
        root: Shard root written by :class:`ShardWriter`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        shuffle: Shuffle chunks and rows (a different order every epoch, fixed by ``seed``).
        decode_faces: Also decode the face crop.
        seed: Seed of the shuffle.
        drop_last: Drop the tail so every rank and worker yields the same number of batches;
            ``None`` lets litdata choose (on under distributed training, off otherwise).
        keep_decoded_audio: Keep each clip's decoded samples in memory (16-bit, 32 kB per second of
            audio, in each process that reads), so later epochs skip the audio codec. For splits that
            fit in memory: decoding FLAC every epoch again was most of the demo's loader time
            (``benchmarks/demo_encoder_step.py --loader``).
        **streaming_kwargs: Passed to :class:`~litdata.StreamingDataset` (e.g. ``cache_dir``,
            ``max_cache_size``, ``storage_options`` for object storage).

    Raises:
        ShardFormatError: When the root, its manifest or the split is missing or incompatible.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        shuffle: bool = False,
        decode_faces: bool = False,
        seed: int = 42,
        drop_last: bool | None = False,
        keep_decoded_audio: bool = False,
        **streaming_kwargs: Any,
    ) -> None:
        storage_options = streaming_kwargs.get("storage_options")
        self.manifest = read_manifest(root, storage_options)
        self._decoded_audio: dict[str, np.ndarray] | None = {} if keep_decoded_audio else None
        if _is_url(self.manifest.root):
            allow_plain_http_endpoint(storage_options)
        self.split = split
        self.decode_faces = decode_faces
        streaming_kwargs.setdefault("serializers", _serializers())
        super().__init__(
            _split_dir(self.manifest, split, storage_options),
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            **streaming_kwargs,
        )

    def decode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Turns one stored row into the training item described in the class docstring."""
        clip_id = str(row["clip_id"])
        samples = None if self._decoded_audio is None else self._decoded_audio.get(clip_id)
        if samples is None:
            samples = _decode_audio(row["audio"], self.manifest.audio_codec, int(row["num_samples"]), clip_id)
            if self._decoded_audio is not None:
                self._decoded_audio[clip_id] = samples
        item: dict[str, Any] = {
            "clip_id": clip_id,
            "speaker_id": str(row["speaker_id"]),
            "audio": torch.from_numpy(samples.astype(np.float32) / 32768.0),
            "embedding": torch.from_numpy(np.asarray(row["embedding"], dtype=np.float32)),
            "landmarks": torch.from_numpy(np.array(row["landmarks"], dtype=np.float32).reshape(-1, 2)),
            "metadata": json.loads(row["metadata"]),
        }
        if self.decode_faces:
            item["face"] = torch.from_numpy(_decode_face(row["face"])).permute(2, 0, 1).contiguous()
        return item

    def __getitem__(self, index: Any) -> Any:
        row = super().__getitem__(index)
        if isinstance(row, list):  # a slice
            return [self.decode(r) for r in row]
        return self.decode(row)
