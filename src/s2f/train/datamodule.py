"""``S2FDataModule``: streams shard splits into fixed-length waveform batches for training.

Batches carry raw waveforms, not spectrograms: the STFT runs on the training device inside the model
(``Speech2FaceSystem.frontend``), which is far cheaper than shipping 598x257x2 float32 arrays through
DataLoader workers (a 6 s clip is 384 kB as float32 samples, 1.2 MB as a spectrogram).

The same module reads a local shard root or one in object storage (``s3://bucket/prefix``; see
``docs/scaling.md``): litdata downloads chunks into ``cache_dir`` ahead of the reader, splits them
across ranks and workers without overlap, and records its position for a mid-epoch resume.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from litdata import StreamingDataLoader

from s2f.audio import fit_to_length
from s2f.errors import ConfigError
from s2f.shards import ClipDataset, ShardManifest, read_manifest

__all__ = ["ClipCollate", "S2FDataModule"]


class _ResumableLoader(StreamingDataLoader):
    """litdata's loader, with a restored position applied to the one epoch that follows :meth:`load_state_dict`.

    litdata clears its ``restore`` flag only when an epoch's iterator runs to its end, and Lightning
    ends an epoch after ``len(loader)`` batches without always exhausting it. After a mid-epoch resume
    the flag then stayed set, so the *next* epoch continued the resumed one's count instead of starting
    afresh: it was cut short, and the one after it shuffled with the wrong epoch number (a run killed
    twice did not end with the weights of an uninterrupted one; ``tests/reliability/test_fit_random_kills.py``).

    A remote root's position also names the folder its chunks were downloaded to, on the machine of the
    rank that saved it, and litdata refuses to resume where this process's cache folder differs: on
    ``--ckpt_path last``, every rank of a node that caches in another folder than rank 0's failed
    (``tests/train/test_streaming_ranks.py``), and a restart with another ``cache_dir`` takes the same check.
    Where the chunks are cached is not part of the position, so the restored state names this process's
    own cache folder instead.
    """

    _just_restored = False

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        super().load_state_dict(_with_own_chunk_cache(obj, self.dataset))
        self._just_restored = True

    def __iter__(self) -> Any:
        if getattr(self, "restore", False) and not self._just_restored:
            self.restore = False  # a stale flag from an epoch that was not iterated to its end
        self._just_restored = False
        return super().__iter__()


def _with_own_chunk_cache(state: dict[str, Any], dataset: Any) -> dict[str, Any]:
    """``state`` with the dataset's cache folders replaced by ``dataset``'s own, when both stream one remote root."""
    position = state.get("dataset")
    url = getattr(getattr(dataset, "input_dir", None), "url", None)
    if not isinstance(position, dict) or url is None or position.get("input_dir_url") != url:
        return state  # a local root, or another remote root than this one (litdata's own check reports that)
    own = {"input_dir_path": dataset.input_dir.path, "cache_dir_path": dataset.cache_dir.path}
    return {**state, "dataset": {**position, **own}}


class ClipCollate:
    """Stacks decoded clips into a batch, making every clip exactly ``num_samples`` long.

    Longer clips keep their first ``num_samples`` (a window at a random start with
    ``random_crop``); shorter ones are loop-repeated, as in the paper. A class rather than a closure
    so DataLoader workers started with ``spawn`` can receive it.

    Args:
        num_samples: Samples per clip in the batch.
        with_faces: Also stack the decoded faces and their landmarks.
        random_crop: Take each longer clip's window at a random start (torch's generator, so
            ``seed_everything`` and DataLoader worker seeding make it repeatable).
    """

    def __init__(self, num_samples: int, with_faces: bool = False, random_crop: bool = False) -> None:
        self.num_samples = num_samples
        self.with_faces = with_faces
        self.random_crop = random_crop

    def _window(self, audio: torch.Tensor) -> torch.Tensor:
        spare = audio.shape[-1] - self.num_samples
        if self.random_crop and spare > 0:
            start = int(torch.randint(0, spare + 1, ()))
            audio = audio[..., start : start + self.num_samples]
        return fit_to_length(audio, self.num_samples)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "audio": torch.stack([self._window(item["audio"]) for item in items]),
            "embedding": torch.stack([item["embedding"] for item in items]),
            "clip_id": [item["clip_id"] for item in items],
            "speaker_id": [item["speaker_id"] for item in items],
        }
        if self.with_faces:
            batch["face"] = torch.stack([item["face"] for item in items])
            # The face decoder learns shapes from the crops' landmarks, so they travel with the faces.
            landmarks = [item["landmarks"] for item in items]
            uniform = len({tuple(points.shape) for points in landmarks}) == 1
            batch["landmarks"] = torch.stack(landmarks) if uniform else landmarks
        return batch


class S2FDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over a shard root written by ``s2f prepare``.

    Each batch is a dict: ``audio`` float32 [B, N] with N = ``clip_seconds * sample_rate``,
    ``embedding`` float32 [B, D] (the teacher's embedding of the speaker's face), ``clip_id`` and
    ``speaker_id`` (lists of str), and ``face`` uint8 [B, 3, 224, 224] with ``landmarks`` float32 [B, K, 2]
    when ``decode_faces`` is set (a list of [K, 2] tensors if the clips hold different numbers of landmarks).
    Loaders are litdata ``StreamingDataLoader``s: the train split is shuffled (a new order every
    epoch), the others are read in stored order; predict reads the test split. litdata splits the
    clips across ranks and workers itself, so no DistributedSampler is involved.

    Args:
        data_dir: Shard root (local path, or an object-store URL litdata can stream from).
        batch_size: Clips per batch.
        num_workers: DataLoader worker processes (0 decodes in the main process).
        clip_seconds: Length every clip is cropped or loop-repeated to.
        sample_rate: Expected audio rate; must match the shards.
        decode_faces: Also decode and batch the face crops (not needed to train the voice encoder).
        shuffle: Shuffle the train split.
        seed: Seed of the train shuffle.
        drop_last: Drop the train tail that does not fill a whole batch on every rank and worker.
        cache_dir: Where litdata keeps downloaded chunks of a remote ``data_dir`` (default: litdata's
            own cache folder). Give each job its own on shared machines.
        max_cache_size: Upper bound of that cache, e.g. ``"50GB"`` (default: litdata's, 75% of the free
            disk); chunks already read are evicted first.
        storage_options: Object-store client options, e.g. ``{"endpoint_url": "http://minio:9000"}``;
            without them the ``AWS_*`` environment variables apply (the place for credentials: these
            options are not saved with the hyperparameters, but a CLI run's config.yaml records them).
        pin_memory: Page-lock batches for faster copies to the GPU; ``None`` turns it on when CUDA is
            available.
        random_crop: Train on a window at a random start of each clip that is longer than
            ``clip_seconds`` (e.g. 3 s windows of 6 s clips: a new window every epoch); other splits
            always take the first ``clip_seconds``. Off in the paper.
        keep_decoded_audio: Keep every clip's decoded samples in memory after its first epoch
            (:class:`~s2f.shards.ClipDataset`'s ``keep_decoded_audio``): later epochs skip the audio
            codec, with the same batches in the same order. For datasets that fit in memory (32 kB per
            second of audio, per loader process).
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 8,
        num_workers: int = 0,
        clip_seconds: float = 6.0,
        sample_rate: int = 16000,
        decode_faces: bool = False,
        shuffle: bool = True,
        seed: int = 42,
        drop_last: bool = True,
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
        storage_options: dict[str, Any] | None = None,
        pin_memory: bool | None = None,
        random_crop: bool = False,
        keep_decoded_audio: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be 0 or more, got {num_workers}")
        if not clip_seconds > 0:
            raise ConfigError(f"clip_seconds must be positive, got {clip_seconds}")
        # storage_options may hold credentials: kept out of hparams.yaml and checkpoints.
        self.save_hyperparameters(ignore=["storage_options"])
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.clip_seconds = clip_seconds
        self.sample_rate = sample_rate
        self.decode_faces = decode_faces
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.cache_dir = cache_dir
        self.max_cache_size = max_cache_size
        self.storage_options = dict(storage_options or {})
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.random_crop = random_crop
        self.keep_decoded_audio = keep_decoded_audio
        self._manifest: ShardManifest | None = None
        self._train_loader: StreamingDataLoader | None = None
        self._pending_train_state: dict[str, Any] | None = None

    @property
    def manifest(self) -> ShardManifest:
        """The shard manifest, read (and checked) on first use."""
        if self._manifest is None:
            manifest = read_manifest(self.data_dir, self.storage_options)
            if manifest.sample_rate != self.sample_rate:
                raise ConfigError(
                    f"{self.data_dir} holds {manifest.sample_rate} Hz audio but the datamodule expects "
                    f"{self.sample_rate} Hz; set sample_rate={manifest.sample_rate} or re-run `s2f prepare`"
                )
            self._manifest = manifest
        return self._manifest

    @property
    def embed_dim(self) -> int:
        """Length of the teacher embeddings in the shards."""
        return self.manifest.embed_dim

    @property
    def teacher(self) -> str:
        """Name of the teacher whose embeddings the shards hold."""
        return self.manifest.teacher

    @property
    def num_samples(self) -> int:
        """Samples per clip in every batch."""
        return round(self.clip_seconds * self.sample_rate)

    def setup(self, stage: str | None = None) -> None:
        """Reads the manifest, so a wrong ``data_dir`` fails before any model work starts."""
        _ = self.manifest

    def _loader(self, split: str, *, shuffle: bool, drop_last: bool | None) -> StreamingDataLoader:
        dataset = ClipDataset(
            self.data_dir,
            split,
            shuffle=shuffle,
            decode_faces=self.decode_faces,
            seed=self.seed,
            drop_last=drop_last,
            keep_decoded_audio=self.keep_decoded_audio,
            **self._streaming_options(),
        )
        return _ResumableLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=ClipCollate(
                self.num_samples, with_faces=self.decode_faces, random_crop=self.random_crop and split == "train"
            ),
            pin_memory=self.pin_memory,
            # Every new iterator draws its workers' base seed from the loader's generator, or from torch's global
            # one when it has none. Evaluation loaders get their own, so that how often a run validates does not
            # change the random draws its training makes (augmentation, dropout) and so the model it ends with.
            generator=None if split == "train" else torch.Generator().manual_seed(self.seed),
        )

    def _streaming_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.max_cache_size is not None:
            options["max_cache_size"] = self.max_cache_size
        if self.cache_dir is not None:
            options["cache_dir"] = self.cache_dir
        if self.storage_options:
            options["storage_options"] = self.storage_options
        return options

    def train_dataloader(self) -> StreamingDataLoader:
        """Shuffled (when ``shuffle``) loader over the train split."""
        _ = self.manifest
        loader = self._loader("train", shuffle=self.shuffle, drop_last=self.drop_last)
        if self._pending_train_state is not None and self.trainer is None:
            # Under a Trainer, the fit loop restores the loader from its own checkpoint entry; loading
            # the same state twice would advance litdata's worker cycle twice.
            loader.load_state_dict(self._pending_train_state)
        self._pending_train_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> StreamingDataLoader:
        """Loader over the val split, in stored order."""
        _ = self.manifest
        # None: litdata keeps every clip on one process and evens out ranks under DDP.
        return self._loader("val", shuffle=False, drop_last=None)

    def test_dataloader(self) -> StreamingDataLoader:
        """Loader over the test split, in stored order."""
        _ = self.manifest
        return self._loader("test", shuffle=False, drop_last=None)

    def predict_dataloader(self) -> StreamingDataLoader:
        """Loader over the test split, in stored order."""
        return self.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """The train loader's litdata position, so a resumed run continues mid-epoch."""
        if self._train_loader is None:
            return {}
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Remembers a train loader position; the next :meth:`train_dataloader` resumes from it."""
        self._pending_train_state = state_dict.get("train_loader")
