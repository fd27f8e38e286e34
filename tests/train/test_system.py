"""Speech2FaceSystem: what "frozen teacher" means in practice, and resuming from a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fit import quiet_trainer
from helpers.shards import ShardFactory, write_shards
from s2f import TEACHERS, Speech2Face
from s2f.data import ClipRecord, S2FDataModule
from s2f.errors import ConfigError
from s2f.train import Speech2FaceSystem


def _sine_voices_and_noise_faces(folder: Path) -> Path:
    """24 clips of 8 speakers (6 train, 1 val, 1 test): one sine voice per speaker, noise faces the teacher embeds."""
    teacher = TEACHERS.create("vggface_tiny")
    rng = np.random.default_rng(0)

    def records() -> Iterator[ClipRecord]:
        for index in range(24):
            speaker = index // 3
            face = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
            embedding = teacher.embed_images(torch.from_numpy(face).permute(2, 0, 1)[None])[0].numpy()
            audio = (0.3 * np.sin(np.arange(16_000) * (0.05 + 0.01 * speaker))).astype(np.float32)
            split = "train" if speaker < 6 else "val" if speaker == 6 else "test"
            yield ClipRecord(f"c{index}", f"s{speaker}", audio, face, embedding, split=split)

    return write_shards(folder / "shards", records(), teacher=teacher.name, embed_dim=teacher.embed_dim)


@pytest.fixture(scope="module")
def shards(shard_factory: ShardFactory) -> Path:
    return shard_factory.build("sine-voices", _sine_voices_and_noise_faces)


def test_teacher_stays_frozen_while_the_encoder_trains(shards: Path, tmp_path: Path) -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    teacher_before = {k: v.clone() for k, v in system.teacher.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in system.encoder.state_dict().items()}
    optimizer = system.configure_optimizers()["optimizer"]
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in system.encoder.parameters()}
    data = S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0)
    quiet_trainer(tmp_path, max_steps=3, limit_val_batches=1.0).fit(system, datamodule=data)
    assert not system.teacher.training
    assert all(p.grad is None and not p.requires_grad for p in system.teacher.parameters())
    for key, value in system.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert any(not torch.equal(v, encoder_before[k]) for k, v in system.encoder.state_dict().items())
    assert system.clip_seconds == 1.0  # taken from the data


@pytest.mark.slow
def test_training_resumes_from_a_checkpoint_without_the_teacher(shards: Path, tmp_path: Path) -> None:
    data = S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0)
    first = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    quiet_trainer(tmp_path, max_epochs=1, enable_checkpointing=True, limit_val_batches=1.0).fit(first, datamodule=data)
    (checkpoint,) = tmp_path.glob("**/*.ckpt")
    assert not any(k.startswith("teacher.") for k in torch.load(checkpoint, weights_only=True)["state_dict"])
    resumed = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    trainer = quiet_trainer(tmp_path / "again", max_epochs=2, enable_checkpointing=True, limit_val_batches=1.0)
    trainer.fit(resumed, datamodule=S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0), ckpt_path=checkpoint)
    assert trainer.current_epoch == 2 and trainer.global_step == 2 * first.trainer.global_step
    reference = TEACHERS.create("vggface_tiny").state_dict()
    for key, value in resumed.teacher.state_dict().items():
        assert torch.equal(value, reference[key])


def test_mismatched_teacher_and_data_are_config_errors(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"encoder predicts 4096-D.*64-D"):
        Speech2FaceSystem("s2f_cnn", "vggface_tiny")
    system = Speech2FaceSystem("s2f_cnn_tiny", TEACHERS.create("vggface_tiny", name="other"))
    with pytest.raises(ConfigError, match="prepared with teacher 'vggface_tiny'"):
        quiet_trainer(tmp_path, max_steps=1).fit(system, datamodule=S2FDataModule(str(shards), batch_size=4))


def _spectrogram_devices(system: Speech2FaceSystem) -> list[tuple[tuple[int, ...], str, tuple[int, ...], str]]:
    """(input shape, input device, output shape, output device) of every front-end call."""
    seen: list[tuple[tuple[int, ...], str, tuple[int, ...], str]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        seen.append((tuple(inputs[0].shape), inputs[0].device.type, tuple(output.shape), output.device.type))

    system.frontend.register_forward_hook(record)
    return seen


def test_the_stft_runs_in_the_module_not_in_the_loader(shards: Path, tmp_path: Path) -> None:
    data = S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["audio"].shape == (4, 16_000) and batch["audio"].dtype == torch.float32  # waveforms, no spectrogram
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    seen = _spectrogram_devices(system)
    quiet_trainer(tmp_path, max_steps=1).fit(system, datamodule=data)
    assert seen == [((4, 16_000), "cpu", (4, 2, 98, 257), "cpu")]
    # The front end is a submodule without parameters: it moves with the system and DDP ignores it.
    assert "frontend.window" in system._ddp_params_and_buffers_to_ignore
    assert not list(system.frontend.parameters())


@pytest.mark.gpu
def test_the_stft_runs_on_the_gpu_in_bf16_training(shards: Path, tmp_path: Path) -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", channels_last=True)
    seen = _spectrogram_devices(system)
    trainer = quiet_trainer(
        tmp_path,
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=2,
        enable_checkpointing=True,
        limit_val_batches=1.0,
    )
    trainer.fit(system, datamodule=S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0, pin_memory=True))
    assert seen and all(entry[1] == entry[3] == "cuda" for entry in seen)


def test_centred_training_measures_the_mean_face_and_keeps_it_in_checkpoints(shards: Path, tmp_path: Path) -> None:
    from s2f.data import iter_records

    train = np.stack([r.embedding.astype(np.float32) for r in iter_records(shards, "train")])
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", center_embeddings=True)
    trainer = quiet_trainer(tmp_path, max_steps=1)
    trainer.fit(system, datamodule=S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0))
    assert torch.allclose(system.embedding_center, torch.from_numpy(train.mean(0)), atol=1e-3)
    trainer.save_checkpoint(tmp_path / "centred.ckpt")
    saved = torch.load(tmp_path / "centred.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(saved["embedding_center"], system.embedding_center)

    # The term compares embeddings seen from the centre: moving both by the centre leaves it unchanged.
    batch = {"audio": torch.randn(4, 16_000), "embedding": torch.from_numpy(train[:4])}
    _, centred = system._losses(batch)
    system.hparams["center_embeddings"] = False
    _, plain = system._losses(batch)
    assert not torch.isclose(centred["l2"], plain["l2"])
    assert centred["angle_deg"] == plain["angle_deg"]  # the logged angle is always the paper's


def _is_centring(key: str) -> bool:
    return "center" in key or "centre" in key


def test_a_checkpoint_from_before_centring_loads_and_predicts_the_same(shards: Path, tmp_path: Path) -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    trainer = quiet_trainer(tmp_path, max_steps=1)
    trainer.fit(system, datamodule=S2FDataModule(str(shards), batch_size=4, clip_seconds=1.0))
    trainer.save_checkpoint(tmp_path / "today.ckpt")

    # Rewrite it as s2f wrote it before centring existed: no centring hyperparameters, no centre buffer.
    checkpoint = torch.load(tmp_path / "today.ckpt", weights_only=True)
    hparams = [key for key in checkpoint["hyper_parameters"] if _is_centring(key)]
    buffers = [key for key in checkpoint["state_dict"] if _is_centring(key)]
    assert hparams and buffers, "nothing to remove: this test no longer describes an older checkpoint"
    for key in hparams:
        del checkpoint["hyper_parameters"][key]
    for key in buffers:
        del checkpoint["state_dict"][key]
    old = tmp_path / "before-centring.ckpt"
    torch.save(checkpoint, old)

    # The system saves no hyperparameters for the models it was given (LightningCLI's config names them).
    loaded = Speech2FaceSystem.load_from_checkpoint(
        old, map_location="cpu", encoder="s2f_cnn_tiny", teacher="vggface_tiny"
    )
    assert loaded.hparams["center_embeddings"] is False  # the default, as before the option existed
    assert not loaded.embedding_center.any()
    system.eval()
    loaded.eval()
    waves = torch.from_numpy(np.sin(np.arange(2 * 16_000) * 0.07).reshape(2, 16_000).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(waves), system(waves))
    # The user's way in: a .ckpt straight into Speech2Face.
    voice = (waves[0].numpy(), 16_000)
    assert torch.equal(
        Speech2Face.from_pretrained(old).predict(voice).embedding, system.export().predict(voice).embedding
    )
