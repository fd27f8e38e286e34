"""S2FDataModule over real shard folders: batch shapes, crop/loop values, shuffling, resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fit import quiet_trainer
from helpers.shards import ShardFactory, write_shards
from s2f.data import S2FDataModule
from s2f.errors import ConfigError, ShardFormatError
from s2f.shards import ClipRecord

D = 8
SR = 16_000
# 0.5 s, 1.3 s, exactly 2 s and 6 s: with clip_seconds=2 the first two loop, the last is cropped.
LENGTHS = [8_000, 20_800, 32_000, 96_000]


def ramp(clip_index: int, num_samples: int) -> np.ndarray:
    """Distinct, position-revealing samples: crop and loop errors show up as value mismatches."""
    return ((np.arange(num_samples) % 30_000) + clip_index).astype(np.int16)


def _ramp_shards(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """4 train speakers, 1 val and 1 test, each with one clip of every length in LENGTHS.

    Returns the root and every clip's audio, by clip id.
    """
    rng = np.random.default_rng(0)
    audio: dict[str, np.ndarray] = {}
    face = np.full((224, 224, 3), 90, np.uint8)

    def records() -> Iterator[ClipRecord]:
        index = 0
        for split, speakers in (("train", 4), ("val", 1), ("test", 1)):
            for s in range(speakers):
                for n in LENGTHS:
                    clip_id = f"{split}-{s}-{n}"
                    audio[clip_id] = ramp(index, n)
                    index += 1
                    yield ClipRecord(
                        clip_id, f"{split}-spk{s}", audio[clip_id], face, rng.standard_normal(D), split=split
                    )

    root = write_shards(folder / "shards", records(), teacher="toy-teacher", embed_dim=D, chunk_bytes="64KB")
    return root, audio


@pytest.fixture(scope="module")
def shards(shard_factory: ShardFactory) -> tuple[Path, dict[str, np.ndarray]]:
    return shard_factory.build("ramps", _ramp_shards)


def expected_wave(samples: np.ndarray, num_samples: int) -> np.ndarray:
    tiled = np.tile(samples, -(-num_samples // samples.shape[0]))[:num_samples]
    return tiled.astype(np.float32) / 32768.0


def epoch_ids(loader) -> list[str]:
    return [clip_id for batch in loader for clip_id in batch["clip_id"]]


def test_batches_have_exact_shapes(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = shards
    dm = S2FDataModule(str(root), batch_size=4, clip_seconds=2.0)
    dm.setup("fit")
    assert dm.embed_dim == D and dm.teacher == "toy-teacher"
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    for batch in batches:
        assert set(batch) == {"audio", "embedding", "clip_id", "speaker_id"}
        assert batch["audio"].shape == (4, 32_000) and batch["audio"].dtype == torch.float32
        assert batch["embedding"].shape == (4, D) and batch["embedding"].dtype == torch.float32
        assert len(batch["clip_id"]) == len(batch["speaker_id"]) == 4
        assert all(isinstance(x, str) for x in batch["clip_id"] + batch["speaker_id"])
    six = S2FDataModule(str(root), batch_size=2)
    batch = next(iter(six.val_dataloader()))
    assert batch["audio"].shape == (2, 96_000)


@pytest.mark.parametrize("clip_seconds", [2.0, 6.0])
def test_clips_are_cropped_or_loop_repeated(shards: tuple[Path, dict[str, np.ndarray]], clip_seconds: float) -> None:
    root, audio = shards
    dm = S2FDataModule(str(root), batch_size=3, clip_seconds=clip_seconds)
    n = round(clip_seconds * SR)
    seen = 0
    for batch in dm.test_dataloader():
        for row, clip_id in zip(batch["audio"], batch["clip_id"], strict=True):
            np.testing.assert_array_equal(row.numpy(), expected_wave(audio[clip_id], n))
            seen += 1
    assert seen == len(LENGTHS)


def test_train_shuffles_by_seed_and_covers_each_clip_once(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, audio = shards
    train_ids = sorted(k for k in audio if k.startswith("train"))
    orders = []
    for seed in (1, 2):
        dm = S2FDataModule(str(root), batch_size=3, seed=seed, drop_last=False)
        loader = dm.train_dataloader()
        first, second = epoch_ids(loader), epoch_ids(loader)
        assert sorted(first) == train_ids and sorted(second) == train_ids
        assert first != second, "each epoch should be reshuffled"
        orders.append(first)
    assert orders[0] != orders[1]
    same_seed = S2FDataModule(str(root), batch_size=3, seed=1, drop_last=False)
    assert epoch_ids(same_seed.train_dataloader()) == orders[0]
    unshuffled = S2FDataModule(str(root), batch_size=3, shuffle=False, drop_last=False)
    assert epoch_ids(unshuffled.train_dataloader()) == train_ids_in_written_order(audio)


def train_ids_in_written_order(audio: dict[str, np.ndarray]) -> list[str]:
    return [k for k in audio if k.startswith("train")]  # dicts keep insertion (= writing) order


def test_drop_last_gives_only_full_batches(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = shards
    dm = S2FDataModule(str(root), batch_size=5, drop_last=True)
    batches = list(dm.train_dataloader())
    assert [len(b["clip_id"]) for b in batches] == [5, 5, 5]  # 16 clips -> 3 full batches
    ids = [i for b in batches for i in b["clip_id"]]
    assert len(set(ids)) == 15


def test_val_and_test_are_deterministic(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, audio = shards
    dm = S2FDataModule(str(root), batch_size=3, seed=7)
    for loader_fn, prefix in (
        (dm.val_dataloader, "val"),
        (dm.test_dataloader, "test"),
        (dm.predict_dataloader, "test"),
    ):
        loader = loader_fn()
        first, second = epoch_ids(loader), epoch_ids(loader)
        assert first == second == [k for k in audio if k.startswith(prefix)]


def test_evaluation_loaders_leave_the_global_random_stream_alone(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    """A run that validates every epoch and one that validates every fifth must make the same training draws."""
    root, _ = shards
    dm = S2FDataModule(str(root), batch_size=3, seed=7)
    torch.manual_seed(0)
    untouched = torch.rand(4)
    torch.manual_seed(0)
    for loader_fn in (dm.val_dataloader, dm.test_dataloader, dm.predict_dataloader):
        epoch_ids(loader_fn())
    assert torch.equal(torch.rand(4), untouched)
    torch.manual_seed(0)
    epoch_ids(dm.train_dataloader())  # the train loader does draw from it: its order is the run's own
    assert not torch.equal(torch.rand(4), untouched)


def test_faces_are_batched_on_request(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = shards
    batch = next(iter(S2FDataModule(str(root), batch_size=2, decode_faces=True).val_dataloader()))
    assert batch["face"].shape == (2, 3, 224, 224) and batch["face"].dtype == torch.uint8
    assert abs(batch["face"].float().mean().item() - 90) < 2


def test_worker_processes_cover_every_clip(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, audio = shards
    dm = S2FDataModule(str(root), batch_size=2, num_workers=2, drop_last=False)
    ids = epoch_ids(dm.train_dataloader())
    assert sorted(ids) == sorted(k for k in audio if k.startswith("train"))


def test_resume_mid_epoch(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = shards
    reference = epoch_ids(S2FDataModule(str(root), batch_size=2, seed=5, drop_last=False).train_dataloader())

    dm = S2FDataModule(str(root), batch_size=2, seed=5, drop_last=False)
    iterator = iter(dm.train_dataloader())
    consumed = [i for _ in range(3) for i in next(iterator)["clip_id"]]
    state = dm.state_dict()
    assert consumed == reference[:6]

    resumed = S2FDataModule(str(root), batch_size=2, seed=5, drop_last=False)
    resumed.load_state_dict(state)
    assert epoch_ids(resumed.train_dataloader()) == reference[6:]


def test_config_errors(shards: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    root, _ = shards
    with pytest.raises(ConfigError, match="16000 Hz"):
        S2FDataModule(str(root), sample_rate=8000).setup("fit")
    with pytest.raises(ShardFormatError, match="does not exist"):
        S2FDataModule(str(tmp_path / "missing")).setup("fit")
    with pytest.raises(ConfigError, match="batch_size"):
        S2FDataModule(str(root), batch_size=0)


def test_trainer_checkpoint_resumes_mid_epoch(shards: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    import lightning as L

    root, audio = shards
    seen: list[str] = []

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(D, 1)

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            seen.extend(batch["clip_id"])
            return self.layer(batch["embedding"]).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(max_steps: int) -> L.Trainer:
        return quiet_trainer(tmp_path, max_steps=max_steps)

    def datamodule() -> S2FDataModule:
        return S2FDataModule(str(root), batch_size=2, clip_seconds=0.5, seed=11, drop_last=False)

    first = trainer(3)
    first.fit(Probe(), datamodule())
    first.save_checkpoint(tmp_path / "mid.ckpt")
    trainer(8).fit(Probe(), datamodule(), ckpt_path=tmp_path / "mid.ckpt")
    # 3 steps before the checkpoint, 5 after: one epoch of 16 train clips, each exactly once.
    assert sorted(seen) == sorted(k for k in audio if k.startswith("train"))


def test_streaming_options_reach_litdata_and_stay_out_of_hparams(
    shards: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    root, _ = shards
    secret = {"aws_secret_access_key": "not-for-checkpoints"}
    dm = S2FDataModule(
        str(root), cache_dir=str(tmp_path), max_cache_size="30GB", storage_options=secret, pin_memory=True
    )
    loader = dm.train_dataloader()
    assert loader.pin_memory and loader.dataset.storage_options == secret and loader.dataset.max_cache_size == "30GB"
    assert "storage_options" not in dm.hparams and dm.hparams["cache_dir"] == str(tmp_path)
    assert not S2FDataModule(str(root)).train_dataloader().pin_memory or torch.cuda.is_available()


def test_random_crop_takes_a_new_window_of_long_train_clips_only(shards: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, audio = shards
    n = 2 * SR
    torch.manual_seed(0)
    dm = S2FDataModule(str(root), batch_size=4, clip_seconds=2.0, random_crop=True)
    starts: dict[str, set[int]] = {}
    for _ in range(3):
        for batch in dm.train_dataloader():
            for row, clip_id in zip(batch["audio"], batch["clip_id"], strict=True):
                source = audio[clip_id].astype(np.float32) / 32768.0
                if source.shape[0] <= n:  # short clips still loop from the start
                    np.testing.assert_array_equal(row.numpy(), expected_wave(audio[clip_id], n))
                    continue
                start = int(np.flatnonzero(source == row[0].item())[0])  # the ramp reveals the offset
                np.testing.assert_array_equal(row.numpy(), source[start : start + n])
                starts.setdefault(clip_id, set()).add(start)
    assert starts and all(len(seen) > 1 for seen in starts.values()), starts  # a new window each epoch
    for batch in dm.val_dataloader():  # evaluation always hears the first clip_seconds
        for row, clip_id in zip(batch["audio"], batch["clip_id"], strict=True):
            np.testing.assert_array_equal(row.numpy(), expected_wave(audio[clip_id], n))
