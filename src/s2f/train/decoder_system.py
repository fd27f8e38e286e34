"""``FaceDecoderSystem``: trains a face decoder to render a face embedding as a frontal face.

Training pairs come from the same shards the voice encoder trains on (face crop, the teacher's
embedding of it, and its landmarks), read through :class:`s2f.data.S2FDataModule` with
``decode_faces=True``. The target of the texture branch is the face warped to the mean landmark
shape (its canonical texture); the target of the landmark branch is the face's landmarks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from .._noise import drop_frozen_module_warning
from ..decoders.face_decoder import DECODERS, FaceDecoder, FaceOutput
from ..decoders.tps import tps_warp
from ..errors import ConfigError
from ..model.decoder_folder import decoder_config
from ..teachers.by_name import build_teacher
from ..teachers.face_teacher import FaceTeacher
from ._logging import log_terms
from .nonfinite import skip_nonfinite_step

__all__ = ["FaceDecoderSystem", "face_grid"]

drop_frozen_module_warning()  # the frozen teacher stays in eval mode on purpose

_FROZEN_PREFIXES = ("teacher.",)


class FaceDecoderSystem(L.LightningModule):
    """Trains a :class:`~s2f.decoders.FaceDecoder` on (face crop, embedding, landmarks) shards.

    Losses, as in Cole et al. (2017): landmark mean squared error (in [-1, 1] image units, so it does
    not depend on the image size), texture mean absolute error against the face warped to the mean
    shape, and, when a teacher is given, the cosine distance between the teacher's embedding of the
    rendered face and the input embedding (the teacher stays frozen; gradients pass through it to
    the decoder). Validation also scores the *mean face* (mean shape, mean texture) on the same
    faces, so every run logs how far it is ahead of that baseline, and writes a grid of input faces
    and their reconstructions: to W&B under ``val/faces`` with a :class:`WandbLogger`, as PNG files
    under ``LOG_DIR/faces/`` otherwise.

    Before the first step, the decoder's mean shape and mean canonical texture are measured on up to
    ``mean_face_clips`` training faces (``fit_mean_face``; turn it off to fine-tune a decoder whose
    canonical frame is already set).

    Args:
        decoder: The decoder to train, or its registered name.
        teacher: The frozen face network whose embeddings the shards hold, for the identity loss; optional.
        teacher_weights: Weights file for a teacher given by name.
        lambda_landmarks: Weight of the landmark MSE.
        lambda_texture: Weight of the texture L1.
        lambda_identity: Weight of the teacher cosine distance (needs ``teacher``).
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        fit_mean_face: Measure the mean shape and texture on the training faces before training.
        mean_face_clips: How many training faces (spread over the split) to measure them on.
        grid_faces: Faces in each validation grid (0 writes none).
        max_nonfinite_steps: Steps with a NaN or infinite loss skipped (with a warning) before the run stops.

    Example:
        >>> import torch
        >>> system = FaceDecoderSystem("warp_decoder_tiny", "vggface_tiny")
        >>> faces = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
        >>> batch = {"face": faces, "landmarks": torch.rand(2, 68, 2) * 100 + 60, "embedding": torch.randn(2, 64)}
        >>> total, terms = system.losses(batch)
        >>> sorted(terms)
        ['identity', 'image_l1', 'landmark_px', 'landmarks', 'texture']
    """

    def __init__(
        self,
        decoder: FaceDecoder | str = "warp_decoder",
        teacher: FaceTeacher | str | None = None,
        teacher_weights: str | None = None,
        lambda_landmarks: float = 1.0,
        lambda_texture: float = 1.0,
        lambda_identity: float = 0.1,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        fit_mean_face: bool = True,
        mean_face_clips: int = 1000,
        grid_faces: int = 8,
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["decoder", "teacher"])
        self.decoder: FaceDecoder = DECODERS.create(decoder) if isinstance(decoder, str) else decoder
        teacher = build_teacher(teacher, teacher_weights)
        self.teacher: FaceTeacher | None = teacher.freeze() if teacher is not None else None
        if self.teacher is not None and self.teacher.embed_dim != self.decoder.embed_dim:
            raise ConfigError(
                f"the decoder takes {self.decoder.embed_dim}-D embeddings but the teacher {self.teacher.name!r} "
                f"makes {self.teacher.embed_dim}-D ones; set the decoder's embed_dim"
            )
        # Which face network's embeddings this decoder reads; the shards say, a saved decoder records it.
        self.embedding_teacher: dict[str, Any] = (
            {"name": self.teacher.name, "embed_dim": self.teacher.embed_dim} if self.teacher is not None else {}
        )
        self._grid: dict[str, torch.Tensor] | None = None

    # -- model and losses ----------------------------------------------------------------------

    def forward(self, embedding: torch.Tensor) -> FaceOutput:
        """The decoder's face for each embedding [B, D]."""
        return self.decoder(embedding)

    def targets(
        self, faces: torch.Tensor, landmarks: torch.Tensor | list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Face crops (uint8 [B, 3, H, H]) and their landmarks (pixels) at the decoder's size, in [0, 1]."""
        size = self.decoder.image_size
        if not isinstance(landmarks, torch.Tensor):
            raise ConfigError(
                "the clips in this batch hold different numbers of landmarks; prepare every clip of the decoder's "
                "shards with the same landmark detector"
            )
        if landmarks.ndim != 3 or landmarks.shape[1] == 0:
            raise ConfigError(
                "the shards hold no landmarks; the face decoder learns from them: prepare shards with landmarks "
                "(s2f.vision.landmarks.FaceLandmarker)"
            )
        expected = getattr(self.decoder, "num_landmarks", landmarks.shape[1])
        if landmarks.shape[1] != expected:
            raise ConfigError(
                f"the shards hold {landmarks.shape[1]} landmarks per face but the decoder predicts {expected}; "
                "set the decoder's num_landmarks"
            )
        faces, landmarks = faces.to(self.device), landmarks.to(self.device)
        images = faces.float() / 255.0 if faces.dtype == torch.uint8 else faces.float()
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return images, _rescale(landmarks, faces.shape[-1], size)

    def canonical_textures(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Faces [B, 3, S, S] warped from their landmarks to the decoder's mean shape: the texture targets."""
        mean = self._mean_landmarks().expand_as(landmarks)
        with torch.no_grad():
            return tps_warp(images, landmarks, mean, flow_size=getattr(self.decoder, "flow_size", None))

    def _mean_landmarks(self) -> torch.Tensor:
        mean = getattr(self.decoder, "mean_landmarks", None)
        if not isinstance(mean, torch.Tensor):
            raise ConfigError(f"{type(self.decoder).__name__} has no mean_landmarks buffer to train against")
        return mean

    def losses(
        self, batch: dict[str, Any], *, keep_for_grid: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total and each term (plus image L1 and landmark error in crop pixels, for logging)."""
        images, landmarks = self.targets(batch["face"], batch["landmarks"])
        embedding = batch["embedding"].to(self.device).float()
        output = self(embedding)
        size = self.decoder.image_size
        landmark_mse = ((output.landmarks - landmarks) * (2.0 / size)).pow(2).mean()
        texture_l1 = (output.texture - self.canonical_textures(images, landmarks)).abs().mean()
        hp = self.hparams
        total = hp["lambda_landmarks"] * landmark_mse + hp["lambda_texture"] * texture_l1
        terms = {"landmarks": landmark_mse, "texture": texture_l1}
        if self.teacher is not None and hp["lambda_identity"]:
            rendered = self.teacher(self.teacher.preprocess(output.image))
            identity = 1.0 - F.cosine_similarity(rendered.float(), embedding, dim=-1).mean()
            total = total + hp["lambda_identity"] * identity
            terms["identity"] = identity
        with torch.no_grad():
            terms["image_l1"] = (output.image - images).abs().mean()
            terms["landmark_px"] = _landmark_px(output.landmarks, landmarks, size, batch["face"].shape[-1])
        if keep_for_grid:
            self._keep_for_grid(images, output)
        return total, terms

    # -- Lightning hooks -----------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        total, terms = self.losses(batch)
        if skip_nonfinite_step(self, total, self.hparams["max_nonfinite_steps"]):
            return None  # no weight update from a NaN or infinite loss
        log_terms(self, "train", total, terms, batch["embedding"].shape[0])
        return total

    def _evaluate(self, stage: str, batch: dict[str, Any], keep_for_grid: bool = False) -> None:
        total, terms = self.losses(batch, keep_for_grid=keep_for_grid)
        terms.update(self.mean_face_errors(batch))
        log_terms(self, stage, total, terms, batch["embedding"].shape[0])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate("val", batch, keep_for_grid=batch_idx == 0 and self.hparams["grid_faces"] > 0)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate("test", batch)

    @torch.no_grad()
    def mean_face_errors(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Image L1 and landmark error (crop pixels) of the mean face on this batch: the baseline to beat."""
        images, landmarks = self.targets(batch["face"], batch["landmarks"])
        mean_shape = self._mean_landmarks().expand_as(landmarks)
        mean_texture = getattr(self.decoder, "mean_texture", None)
        errors = {
            "mean_face_landmark_px": _landmark_px(mean_shape, landmarks, images.shape[-1], batch["face"].shape[-1])
        }
        if isinstance(mean_texture, torch.Tensor):
            # The mean texture is drawn in the mean shape, so it is the mean face as it stands.
            errors["mean_face_image_l1"] = (mean_texture.expand_as(images) - images).abs().mean()
        return errors

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        output = self(batch["embedding"].to(self.device).float())
        return {"clip_id": batch.get("clip_id"), "image": output.image, "landmarks": output.landmarks}

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        return torch.optim.Adam(
            self.decoder.parameters(), lr=hp["lr"], betas=tuple(hp["betas"]), weight_decay=hp["weight_decay"]
        )

    # -- the canonical frame, measured on the training faces -----------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_teacher = getattr(datamodule, "teacher", None)
        data_dim = getattr(datamodule, "embed_dim", None)
        if isinstance(data_dim, int) and data_dim != self.decoder.embed_dim:
            raise ConfigError(
                f"the shards hold {data_dim}-D embeddings of teacher {data_teacher!r}, but the decoder takes "
                f"{self.decoder.embed_dim}-D ones; set the decoder's embed_dim"
            )
        if isinstance(data_teacher, str):
            if self.teacher is not None and data_teacher != self.teacher.name:
                raise ConfigError(
                    f"the shards were prepared with teacher {data_teacher!r} but this system uses {self.teacher.name!r}"
                )
            self.embedding_teacher = {"name": data_teacher, "embed_dim": self.decoder.embed_dim}
        if stage == "fit" and self.hparams["fit_mean_face"]:
            data_dir = getattr(datamodule, "data_dir", None)
            if data_dir is None:
                warnings.warn(
                    "FaceDecoderSystem: the datamodule has no data_dir, so the mean face is not measured; "
                    "train with s2f.data.S2FDataModule or set fit_mean_face=False",
                    stacklevel=2,
                )
                return
            # Runs before a checkpoint is restored, so a resumed run ends up with the saved mean face.
            self.fit_mean_face(str(data_dir))

    @torch.no_grad()
    def fit_mean_face(self, data_dir: str, split: str = "train") -> None:
        """Sets the decoder's canonical frame from up to ``mean_face_clips`` training faces: the mean shape and
        the mean canonical texture, and for a decoder with a linear face model
        (:class:`~s2f.decoders.LinearFaceDecoder`) its closed-form fit on the same faces."""
        from ..shards import ClipDataset

        set_mean_face = getattr(self.decoder, "set_mean_face", None)
        if set_mean_face is None:
            return
        rows_only = ClipDataset(data_dir, split)
        count = len(rows_only)
        if count == 0:
            raise ConfigError(f"{data_dir} has no {split!r} faces to measure the mean face on")
        # Spread over the split (the same rows on every rank), not only its first chunk.
        rows = np.unique(np.linspace(0, count - 1, min(count, self.hparams["mean_face_clips"])).round().astype(int))
        size, face_size = self.decoder.image_size, rows_only.manifest.face_size
        # Two passes, so that only one chunk of decoded faces is in memory at a time.
        landmarks = torch.stack([rows_only[int(i)]["landmarks"] for i in rows])
        mean_shape = _rescale(landmarks, face_size, size).mean(0)
        fit_face_model = getattr(self.decoder, "fit_face_model", None)
        faces = ClipDataset(data_dir, split, decode_faces=True)
        total = torch.zeros(3, size, size)
        kept: dict[str, list[torch.Tensor]] = {"embeddings": [], "landmarks": [], "textures": []}
        for start in range(0, len(rows), 64):
            chunk = [faces[int(i)] for i in rows[start : start + 64]]
            images, points = self.targets(
                torch.stack([item["face"] for item in chunk]), torch.stack([item["landmarks"] for item in chunk])
            )
            flow_size = getattr(self.decoder, "flow_size", None)
            textures = tps_warp(images, points, mean_shape.expand_as(points), flow_size=flow_size).cpu()
            total += textures.sum(0)
            if fit_face_model is not None:
                kept["embeddings"].append(torch.stack([item["embedding"] for item in chunk]).float())
                kept["landmarks"].append(points.cpu())
                kept["textures"].append(textures.half())  # half: 1000 faces at 224 px stay under 300 MB
        set_mean_face(mean_shape.to(self.device), (total / len(rows)).to(self.device))
        if fit_face_model is not None:
            fit_face_model(*(torch.cat(kept[name]).float() for name in ("embeddings", "landmarks", "textures")))

    # -- the face grid -------------------------------------------------------------------------

    def _keep_for_grid(self, images: torch.Tensor, output: FaceOutput) -> None:
        count = self.hparams["grid_faces"]
        self._grid = {
            "input": images[:count].detach().float().cpu(),
            "output": output.image[:count].detach().float().cpu(),
            "texture": output.texture[:count].detach().float().cpu(),
        }

    def on_validation_epoch_start(self) -> None:
        self._grid = None

    def on_validation_epoch_end(self) -> None:
        grid, self._grid = self._grid, None
        if grid is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        picture = face_grid([grid["input"], grid["output"], grid["texture"]])
        from lightning.pytorch.loggers import WandbLogger

        wandb_loggers = [logger for logger in self.loggers if isinstance(logger, WandbLogger)]
        caption = "rows: input face, decoder output, predicted canonical texture"
        if wandb_loggers:
            for logger in wandb_loggers:
                logger.log_image(key="val/faces", images=[picture], caption=[caption], step=self.global_step)
            return
        from PIL import Image

        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "faces"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"epoch{self.current_epoch:03d}-step{self.global_step:06d}.png")

    # -- checkpoints and export ----------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_FROZEN_PREFIXES)]:
            del state[key]
        # The same record a saved decoder folder holds, so load_decoder reads either.
        checkpoint["s2f"] = decoder_config(self.decoder, self.embedding_teacher)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # Checkpoints leave the frozen teacher out; keep the one this system was built with.
        own = super().state_dict()
        merged = dict(state_dict)
        merged.update({k: v for k, v in own.items() if k.startswith(_FROZEN_PREFIXES) and k not in merged})
        return super().load_state_dict(merged, strict=strict, assign=assign)


def _rescale(landmarks: torch.Tensor, from_size: int, to_size: int) -> torch.Tensor:
    # Pixel centres move with a resize: x_new = (x + 0.5) * to / from - 0.5.
    return (landmarks.float() + 0.5) * (to_size / from_size) - 0.5


def _landmark_px(predicted: torch.Tensor, target: torch.Tensor, size: int, face_size: int) -> torch.Tensor:
    """Mean point-to-point distance, in pixels of the ``face_size`` crop the shards hold."""
    return (predicted - target).norm(dim=-1).mean() * (face_size / size)


def face_grid(rows: list[torch.Tensor], *, pad: int = 2, min_size: int = 128) -> np.ndarray:
    """Tiles rows of images [N, 3, S, S] in [0, 1] into one RGB uint8 picture, one image per cell.

    Images smaller than ``min_size`` are enlarged (bilinear), so that small decoders' faces can be seen.

    Example:
        >>> face_grid([torch.zeros(3, 3, 64, 64), torch.ones(2, 3, 64, 64)]).shape
        (262, 392, 3)
    """
    count = max(len(row) for row in rows)
    size = max(rows[0].shape[-1], min_size)
    canvas = torch.ones(3, len(rows) * (size + pad) + pad, count * (size + pad) + pad)
    for r, row in enumerate(rows):
        if row.shape[-1] != size:
            row = F.interpolate(row.float(), size=(size, size), mode="bilinear", align_corners=False)
        for c, image in enumerate(row):
            top, left = pad + r * (size + pad), pad + c * (size + pad)
            canvas[:, top : top + size, left : left + size] = image.clamp(0, 1)
    return (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
