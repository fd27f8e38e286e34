"""The face decoder: architecture, saving, losses, and training on real faces until it beats the mean face.

The training faces are made by ``tests/helpers/faces.py`` from the two real portraits that ship in
installed packages (scikit-image's astronaut, matplotlib's Grace Hopper): aligned with dlib's 68
landmarks, then morphed, reshaped and jittered in colour. Each face is its own "speaker".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from helpers.faces import make_faces
from helpers.fit import quiet_trainer
from helpers.shards import ShardFactory, write_shards
from media import tone, write_wav
from s2f import DECODERS, TEACHERS, Speech2Face
from s2f.cli import main
from s2f.data import ClipRecord, S2FDataModule, iter_records
from s2f.decoders.linear_face import principal_components
from s2f.errors import ConfigError, WeightsError
from s2f.model.decoder_folder import load_decoder, save_decoder
from s2f.train import FaceDecoderSystem, Speech2FaceSystem
from s2f.vision.alignment import mean_shape

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAIN_FACES, HELD_OUT_FACES = 512, 64
STEPS = 150


# --------------------------------------------------------------------------------------------- fast


def test_an_untrained_decoder_renders_the_mean_face() -> None:
    decoder = DECODERS.create("warp_decoder_tiny")
    texture = torch.rand(3, 64, 64)
    shape = torch.tensor(mean_shape(64), dtype=torch.float32) + torch.randn(68, 2)
    decoder.set_mean_face(shape, texture)
    face = decoder(torch.randn(3, 64))
    torch.testing.assert_close(face.landmarks, shape.expand(3, -1, -1))
    torch.testing.assert_close(face.image, texture.clamp(1e-3, 1 - 1e-3).expand(3, -1, -1, -1), atol=1e-5, rtol=0)


def test_the_paper_sized_decoder_has_cole_et_al_layers() -> None:
    decoder = DECODERS.create("warp_decoder")
    assert isinstance(decoder.first_layer, nn.Linear)
    assert (decoder.first_layer.in_features, decoder.first_layer.out_features) == (4096, 1000)
    assert decoder.texture_fc.out_features == 14 * 14 * 256
    convs = [m for m in decoder.upsample if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(256, 128), (128, 64), (64, 32), (32, 32)]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert decoder.to_rgb.kernel_size == (1, 1) and decoder.to_rgb.in_channels == 32
    assert decoder.image_size == 224 and decoder.mean_landmarks.shape == (68, 2)
    assert "warp_decoder_tiny" in DECODERS and DECODERS.create("warp_decoder_tiny").embed_dim == 64


def test_a_saved_decoder_reloads_identically_and_mismatches_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    decoder = DECODERS.create("warp_decoder_tiny")
    for parameter in decoder.parameters():
        nn.init.normal_(parameter, std=0.02)
    decoder.set_mean_face(torch.tensor(mean_shape(64), dtype=torch.float32) + 1.0, torch.rand(3, 64, 64))
    folder = save_decoder(decoder, tmp_path / "decoder", teacher={"name": "vggface_tiny", "embed_dim": 64})
    embedding = torch.randn(2, 64)
    expected = decoder(embedding)
    for again in (
        load_decoder(folder, teacher="vggface_tiny"),
        DECODERS.create("warp_decoder_tiny", weights=str(folder)),
    ):
        face = again(embedding)
        assert torch.equal(face.image, expected.image) and torch.equal(face.landmarks, expected.landmarks)
    assert "weights" not in json.loads((folder / "config.json").read_text())["decoder"]["init_args"]
    with pytest.raises(ConfigError, match="trained on 'vggface_tiny' embeddings"):
        load_decoder(folder, teacher="vggface")
    with pytest.raises(WeightsError, match="does not match"):
        DECODERS.create("warp_decoder_tiny", hidden_dim=32, weights=str(folder))
    with pytest.raises(ConfigError, match=r"give a decoder \.ckpt"):
        load_decoder(tmp_path / "nothing")


def _photo_batch(count: int = 2) -> dict[str, torch.Tensor]:
    face = np.array(Image.fromarray(skimage.data.astronaut()[0:360, 40:400]).resize((224, 224)))
    faces = torch.from_numpy(face).permute(2, 0, 1)[None].repeat(count, 1, 1, 1)
    landmarks = torch.tensor(mean_shape(224), dtype=torch.float32).repeat(count, 1, 1)
    teacher = TEACHERS.create("vggface_tiny")
    return {"face": faces, "landmarks": landmarks, "embedding": teacher.embed_images(faces)}


@pytest.mark.slow
def test_the_identity_loss_trains_the_decoder_through_the_frozen_teacher() -> None:
    torch.manual_seed(0)
    batch = _photo_batch()
    system = FaceDecoderSystem("warp_decoder_tiny", "vggface_tiny", lambda_landmarks=0.0, lambda_texture=0.0)
    assert system.teacher is not None
    teacher_before = {k: v.clone() for k, v in system.teacher.state_dict().items()}
    optimizer = system.configure_optimizers()
    losses = []
    for _ in range(5):
        total, terms = system.losses(batch)
        assert set(terms) == {"landmarks", "texture", "identity", "image_l1", "landmark_px"}
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(terms["identity"].item())
    assert losses[-1] < losses[0], losses
    assert all(p.grad is None for p in system.teacher.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in system.teacher.state_dict().items())
    without = FaceDecoderSystem("warp_decoder_tiny")
    assert "identity" not in without.losses(batch)[1]


def test_principal_components_span_a_low_rank_set_of_rows() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.rand(48, generator=generator)
    directions = torch.linalg.qr(torch.randn(48, 3, generator=generator)).Q.T  # 3 orthonormal texture changes
    coefficients = torch.randn(200, 3, generator=generator) * torch.tensor([3.0, 2.0, 1.0])
    textures = mean + coefficients @ directions
    basis = principal_components(textures, mean, 5)
    assert basis.shape == (5, 48)
    # Three directions carry everything; each is scaled by its standard deviation over the rows.
    torch.testing.assert_close(basis[3:], torch.zeros(2, 48), atol=1e-4, rtol=0)
    torch.testing.assert_close(basis[:3].norm(dim=1), coefficients.std(0), rtol=0.05, atol=0)
    solution = torch.linalg.lstsq(basis[:3].T, (textures - mean).T).solution
    torch.testing.assert_close(solution.T @ basis[:3] + mean, textures, atol=1e-4, rtol=0)
    assert principal_components(textures[:1], mean, 4).abs().sum() == 0  # one row has no variation to learn


def test_the_linear_face_model_fits_faces_that_are_linear_in_their_embedding() -> None:
    """Faces whose shape and texture are linear in the embedding are decoded exactly after the closed-form fit."""
    generator = torch.Generator().manual_seed(0)
    decoder = DECODERS.create("linear_face_decoder_tiny", embed_dim=8, components=4, ridge=1e-9)
    embeddings = torch.randn(300, 8, generator=generator)
    mean_texture = torch.rand(3, 64, 64, generator=generator) * 0.4 + 0.3
    texture_directions = torch.randn(8, 3 * 64 * 64, generator=generator) * 0.01
    texture_directions[4:] = 0  # four texture directions: the model's four components
    textures = (mean_texture.flatten() + embeddings @ texture_directions).view(-1, 3, 64, 64)
    mean_landmarks = decoder.mean_landmarks.clone()
    landmarks = mean_landmarks + (embeddings @ (torch.randn(8, 136, generator=generator) * 0.3)).view(-1, 68, 2)
    untrained = decoder(embeddings[:2])
    torch.testing.assert_close(untrained.landmarks, mean_landmarks.expand(2, -1, -1))  # the mean face
    decoder.set_mean_face(mean_landmarks, mean_texture)
    decoder.fit_face_model(embeddings, landmarks, textures)
    fitted = decoder(embeddings[:50])
    torch.testing.assert_close(fitted.texture, textures[:50], atol=1e-3, rtol=0)
    torch.testing.assert_close(fitted.landmarks, landmarks[:50], atol=1e-3, rtol=0)
    assert decoder.first_layer is decoder.head and decoder.head.out_features == 136 + 4
    with pytest.raises(ValueError, match="at least 1"):
        DECODERS.create("linear_face_decoder_tiny", components=0)


def test_landmark_and_size_mismatches_are_config_errors() -> None:
    batch = _photo_batch()
    system = FaceDecoderSystem("warp_decoder_tiny")
    with pytest.raises(ConfigError, match="5 landmarks per face but the decoder predicts 68"):
        system.losses({**batch, "landmarks": batch["landmarks"][:, :5]})
    with pytest.raises(ConfigError, match="no landmarks"):
        system.losses({**batch, "landmarks": torch.zeros(2, 0, 2)})
    with pytest.raises(ConfigError, match="different numbers of landmarks"):
        system.losses({**batch, "landmarks": [batch["landmarks"][0], batch["landmarks"][1, :5]]})
    with pytest.raises(ConfigError, match="decoder takes 4096-D"):
        FaceDecoderSystem("warp_decoder", "vggface_tiny")


# --------------------------------------------------------------------------------------------- a face world


def _face_world(folder: Path) -> Path:
    """Shards of 512 training and 64 held-out faces, embedded by vggface_tiny, with a short voice each."""
    faces, shapes = make_faces(TRAIN_FACES + HELD_OUT_FACES, 0)
    teacher = TEACHERS.create("vggface_tiny")
    pixels = torch.from_numpy(faces).permute(0, 3, 1, 2)
    embeddings = torch.cat([teacher.embed_images(pixels[i : i + 64]) for i in range(0, len(pixels), 64)]).numpy()
    records = (
        ClipRecord(
            f"face{index}",
            f"person{index}",
            tone(0.5, 100.0 + index),
            face,
            embedding,
            shape,
            split="train" if index < TRAIN_FACES else "val",
        )
        for index, (face, shape, embedding) in enumerate(zip(faces, shapes, embeddings, strict=True))
    )
    return write_shards(folder / "shards", records, teacher=teacher.name, embed_dim=teacher.embed_dim)


@pytest.fixture(scope="module")
def world(shard_factory: ShardFactory) -> Path:
    return shard_factory.build("decoder-faces", _face_world)


# --------------------------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def trained(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The decoder recipe, tiny, on the CPU, with PNG grids; returns the run's folder."""
    out = tmp_path_factory.mktemp("decoder-run")
    args = [
        "fit", "--config", str(RECIPES / "decoder.yaml"),
        "--data.init_args.data_dir", str(world), "--data.init_args.num_workers", "0",
        "--model.init_args.decoder", "warp_decoder_tiny", "--model.init_args.lr", "0.002",
        # The identity loss runs a 224-px teacher on every face; too slow for CI (tested on its own above).
        "--model.init_args.teacher", "null", "--model.init_args.teacher_weights", "null",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_steps", str(STEPS),
        "--trainer.val_check_interval", "50", "--trainer.log_every_n_steps", "10",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    assert main(args) == 0
    return out


def _held_out(world: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    records = list(iter_records(world, "val"))
    faces = torch.from_numpy(np.stack([r.face for r in records])).permute(0, 3, 1, 2)
    landmarks = torch.from_numpy(np.stack([r.landmarks for r in records]))
    embeddings = torch.from_numpy(np.stack([r.embedding for r in records])).float()
    return faces, landmarks, embeddings


@pytest.mark.slow
def test_the_trained_decoder_beats_the_mean_face_on_held_out_faces(world: Path, trained: Path) -> None:
    (checkpoint,) = trained.glob("*/version_*/checkpoints/last.ckpt")
    decoder = load_decoder(checkpoint, teacher="vggface_tiny")
    faces, landmarks, embeddings = _held_out(world)
    size = decoder.image_size
    images = F.interpolate(faces.float() / 255, size=(size, size), mode="bilinear", antialias=True)
    truth = (landmarks + 0.5) * size / 224 - 0.5
    with torch.no_grad():
        output = decoder(embeddings)

    def errors(image: torch.Tensor, points: torch.Tensor) -> tuple[float, float]:
        landmark_px = ((points - truth).norm(dim=-1).mean() * 224 / size).item()  # pixels of the 224 crop
        return landmark_px, (image - images).abs().mean().item() * 255  # grey levels of 255

    mean_face = errors(decoder.mean_texture.expand_as(images), decoder.mean_landmarks.expand_as(truth))
    decoded = errors(output.image, output.landmarks)
    print(f"\nheld-out faces ({len(faces)}), tiny decoder after {STEPS} steps on {TRAIN_FACES} faces:")
    print(f"  {'':12}{'landmark error (px of 224)':>28}{'pixel L1 (of 255)':>20}")
    print(f"  {'mean face':12}{mean_face[0]:28.2f}{mean_face[1]:20.2f}")
    print(f"  {'decoder':12}{decoded[0]:28.2f}{decoded[1]:20.2f}")
    assert decoded[0] < 0.9 * mean_face[0] and decoded[1] < 0.8 * mean_face[1], (decoded, mean_face)

    # The run logged the same comparison on the validation faces while it trained.
    (metrics,) = trained.glob("*/version_*/metrics.csv")
    with metrics.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/image_l1")]
    assert len(rows) == STEPS // 50
    assert float(rows[-1]["val/image_l1"]) < float(rows[-1]["val/mean_face_image_l1"])
    assert float(rows[-1]["val/landmark_px"]) < float(rows[-1]["val/mean_face_landmark_px"])
    assert float(rows[-1]["val/texture"]) < float(rows[0]["val/texture"])


@pytest.mark.slow
def test_the_linear_face_decoder_draws_each_held_out_face_not_an_average(world: Path, tmp_path: Path) -> None:
    import lightning as L

    L.seed_everything(0, verbose=False)
    decoder = DECODERS.create("linear_face_decoder_tiny")
    system = FaceDecoderSystem(decoder, None, lr=3e-3, grid_faces=0)
    trainer = quiet_trainer(tmp_path, max_steps=STEPS)
    trainer.fit(system, datamodule=S2FDataModule(str(world), batch_size=16, clip_seconds=0.1, decode_faces=True))
    faces, _, embeddings = _held_out(world)
    images = F.interpolate(faces.float() / 255, size=(64, 64), mode="bilinear", antialias=True)
    with torch.no_grad():
        drawn = decoder.eval()(embeddings).image
    # Pixel distance from every decoded face to every held-out true face: a decoder that draws the average
    # face is as far from its own face as from the others; one that draws the person is nearest its own.
    distance = (drawn[:, None] - images[None]).abs().flatten(2).mean(-1)
    own, others = distance.diag(), distance[~torch.eye(len(images), dtype=torch.bool)]
    nearest_is_own = (distance.argmin(dim=1) == torch.arange(len(images))).float().mean().item()
    mean_face = (decoder.mean_texture - images).abs().flatten(1).mean(-1)
    print(
        f"\nlinear face decoder, {len(images)} held-out faces: own {own.mean():.4f}, others {others.mean():.4f},"
        f" mean face {mean_face.mean():.4f}; nearest is own {nearest_is_own:.0%} (chance {1 / len(images):.0%})"
    )
    assert own.mean() < 0.8 * mean_face.mean()
    assert nearest_is_own >= 10 / len(images)


@pytest.mark.slow
def test_the_recipe_writes_face_grids_that_match_their_inputs(trained: Path) -> None:
    grids = sorted(trained.glob("*/version_*/faces/*.png"))
    assert [g.name for g in grids] == [f"epoch{e:03d}-step{s:06d}.png" for e, s in ((3, 50), (6, 100), (9, 150))]
    picture = np.asarray(Image.open(grids[-1]).convert("RGB")).astype(np.float32)
    cell, pad = 128, 2
    assert picture.shape == (3 * (cell + pad) + pad, 8 * (cell + pad) + pad, 3)

    def tile(row: int, column: int) -> np.ndarray:
        top, left = pad + row * (cell + pad), pad + column * (cell + pad)
        return picture[top : top + cell, left : left + cell]

    # Row 0 holds the input faces, row 1 their reconstructions: each reconstruction is closer to its own
    # input than to the other inputs, i.e. the grid shows these faces, not one average face eight times.
    distance = np.array([[np.abs(tile(1, j) - tile(0, i)).mean() for j in range(8)] for i in range(8)])
    assert np.diag(distance).mean() < distance[~np.eye(8, dtype=bool)].mean()
    assert (np.argmin(distance, axis=0) == np.arange(8)).mean() >= 0.5


@pytest.mark.slow
def test_a_voice_model_with_the_decoder_predicts_a_face_image(world: Path, trained: Path, tmp_path: Path) -> None:
    (decoder_checkpoint,) = trained.glob("*/version_*/checkpoints/last.ckpt")
    decoder = DECODERS.create("warp_decoder_tiny", weights=str(decoder_checkpoint))
    decoder_before = {k: v.clone() for k, v in decoder.state_dict().items()}
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", decoder=decoder)
    trainer = quiet_trainer(tmp_path, max_steps=2, enable_checkpointing=True)  # the checkpoint is exported below
    trainer.fit(system, datamodule=S2FDataModule(str(world), batch_size=8, clip_seconds=1.0))
    assert "train/l1" in trainer.callback_metrics  # the paper's L1 term through the decoder's first layer
    assert all(torch.equal(v, decoder_before[k]) for k, v in system.decoder.state_dict().items())  # stays frozen
    (checkpoint,) = tmp_path.glob("**/*.ckpt")

    # The checkpoint leaves the frozen decoder out; export rebuilds it from its weights file, or attaches another.
    voice = write_wav(tmp_path / "voice.wav", tone(2.0, 140.0))
    for extra in ([], ["--decoder", str(decoder_checkpoint)]):
        exported = tmp_path / f"model{len(extra)}"
        assert main(["export", str(checkpoint), str(exported), *extra]) == 0
        assert main(["predict", "--model", str(exported), str(voice), "-o", str(tmp_path / "face.png")]) == 0
        image = Image.open(tmp_path / "face.png")
        assert image.size == (64, 64) and image.mode == "RGB"
        model = Speech2Face.from_pretrained(exported)
        prediction = model.predict(voice)
        assert prediction.landmarks is not None and prediction.landmarks.shape == (68, 2)
        assert np.array_equal(np.asarray(prediction.image), np.asarray(image))


@pytest.mark.slow
def test_with_wandb_the_grid_goes_to_wandb_images(world: Path, tmp_path: Path) -> None:
    args = [
        "fit", "--config", str(RECIPES / "decoder.yaml"),
        "--data.init_args.data_dir", str(world), "--data.init_args.num_workers", "0",
        "--data.init_args.batch_size", "8", "--model.init_args.decoder", "warp_decoder_tiny",
        "--model.init_args.teacher", "null", "--model.init_args.teacher_weights", "null",
        "--model.init_args.mean_face_clips", "32", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
        "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    assert main(args) == 0
    (image,) = tmp_path.glob("wandb/offline-run-*/files/media/images/val/faces_*.png")
    assert Image.open(image).size == (8 * 130 + 2, 3 * 130 + 2)
    assert not list(tmp_path.glob("**/faces/*.png"))  # W&B instead of PNG files, not both
