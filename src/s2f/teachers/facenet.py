"""FaceNet's Inception-ResNet-v1 (Schroff et al. 2015) from facenet-pytorch: a 512-D face embedding.

facenet-pytorch ships the architecture but not the trained weights, which its authors publish on
GitHub (trained on VGGFace2, 8631 identities, or CASIA-WebFace, 10575). s2f reads them from a file
you name -- the published ``20180402-114759-vggface2.pt`` loads as it is, as does a ``.safetensors``
with the same keys -- and downloads them only when asked explicitly with a prefixed name,
``weights="facenet-pytorch:vggface2"`` (or ``:casia-webface``), into torch's hub cache. Nothing is
ever unpickled: ``.pt`` files are read with ``weights_only=True``.

The embedding is the 512-D output of the last batch norm, *before* facenet-pytorch's L2
normalisation, so that :meth:`FaceNet.classify` (the published ``logits`` layer, when the weights
have it) sees exactly what it was trained on; s2f's losses normalise anyway.

FaceNet was trained on MTCNN boxes stretched to 160x160. s2f's aligned 224x224 crops are looser,
so :meth:`FaceNet.preprocess` first cuts the region where the detector box of a frontal face lies
in such a crop (``crop_box``); pass ``crop_box=(0, 0, 1, 1)`` for crops that are already tight.

Example:
    >>> import torch
    >>> teacher = facenet_tiny()
    >>> teacher.embed_images(torch.zeros(2, 3, 224, 224, dtype=torch.uint8)).shape
    torch.Size([2, 512])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config.weights import load_into, read_state_dict
from ..errors import WeightsError
from .face_teacher import TEACHERS, FaceTeacher

__all__ = ["DOWNLOAD_PREFIX", "FaceNet", "facenet", "facenet_tiny"]

DOWNLOAD_PREFIX = "facenet-pytorch:"
_RELEASES = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
PUBLISHED = {
    "vggface2": (_RELEASES + "20180402-114759-vggface2.pt", 8631),
    "casia-webface": (_RELEASES + "20180408-102900-casia-webface.pt", 10575),
}
# Where MTCNN's box of a frontal face lies in an s2f crop (fractions of the side: x0, y0, x1, y1).
S2F_CROP_BOX = (0.19, 0.09, 0.77, 0.83)
# InceptionResnetV1's layers up to the pooled features, in order (its forward, minus dropout and normalisation).
_TRUNK = (
    "conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
    "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a",
)  # fmt: skip


def _resolve_weights(weights: str) -> Path:
    """A local path, or the hub-cache path of a published file named with :data:`DOWNLOAD_PREFIX`."""
    if not weights.startswith(DOWNLOAD_PREFIX):
        if weights in PUBLISHED:
            raise WeightsError(
                f"{weights!r} is not a file; to download the published weights write "
                f"weights='{DOWNLOAD_PREFIX}{weights}' (needs the network), or give a local path"
            )
        return Path(weights).expanduser()
    name = weights[len(DOWNLOAD_PREFIX) :]
    if name not in PUBLISHED:
        raise WeightsError(f"{weights}: unknown published FaceNet weights; choose one of {sorted(PUBLISHED)}")
    url = PUBLISHED[name][0]
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target), progress=True)
        except Exception as err:  # urllib raises several types; all mean "not downloaded"
            raise WeightsError(
                f"{url}: download failed ({type(err).__name__}: {err}); fetch the file on a machine that is "
                "online and pass its local path as the weights"
            ) from None
    return target


class FaceNet(FaceTeacher):
    """Inception-ResNet-v1 (facenet-pytorch's layout) as a frozen 512-D teacher.

    Args:
        weights: A local weights file, or ``"facenet-pytorch:vggface2"`` / ``"facenet-pytorch:casia-webface"``
            to download the published ones (only then is the network touched).
        num_classes: Size of the ``logits`` classifier; read from the weights file when it has one.
        crop_box: Region of the input crop fed to the network, as fractions (x0, y0, x1, y1);
            the default fits s2f's aligned crops.
        random_init_seed: Build with seeded random weights instead of a file (tests and demos).
        name: The name the teacher goes by in shard manifests and saved models.
    """

    embed_dim = 512
    image_size = 160
    # facenet-pytorch's fixed_image_standardization: (x - 127.5) / 128.
    pixel_mean = (127.5, 127.5, 127.5)
    pixel_std = (128.0, 128.0, 128.0)

    def __init__(
        self,
        weights: str | None = None,
        *,
        num_classes: int | None = None,
        crop_box: Sequence[float] = S2F_CROP_BOX,
        random_init_seed: int | None = None,
        name: str = "facenet",
    ) -> None:
        super().__init__()
        if weights is None and random_init_seed is None:
            raise WeightsError(
                "FaceNet needs weights: pass weights=/path/to/20180402-114759-vggface2.pt (or .safetensors), or "
                f"weights='{DOWNLOAD_PREFIX}vggface2' to download the published file"
            )
        try:
            from facenet_pytorch import InceptionResnetV1
        except ImportError as err:
            raise WeightsError("facenet-pytorch is not installed; pip install 's2f[faces]'") from err
        if len(crop_box) != 4 or not (0 <= crop_box[0] < crop_box[2] <= 1 and 0 <= crop_box[1] < crop_box[3] <= 1):
            raise ValueError(f"crop_box must be (x0, y0, x1, y1) fractions with x0 < x1 and y0 < y1, got {crop_box}")
        self.name = name
        self.crop_box = tuple(float(v) for v in crop_box)
        state = None
        if weights is not None:
            path = _resolve_weights(os.fspath(weights))
            state = read_state_dict(path, "FaceNet weights")
            if "logits.weight" in state:
                num_classes = int(state["logits.weight"].shape[0])
        # PyTorch's default initialisation, seeded without touching the global random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_init_seed or 0)
            self.network = InceptionResnetV1(pretrained=None, classify=False)
            self.network.logits = nn.Linear(512, num_classes) if num_classes else None
        self.has_classifier = num_classes is not None
        if state is not None:
            load_into(self.network, state, weights or "", f"FaceNet teacher (512-D, {num_classes or 'no'} classes)")
        self.freeze()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB crops [B, 3, H, W] -> the ``crop_box`` region at 160x160, standardised."""
        if images.ndim == 3:
            images = images.unsqueeze(0)
        height, width = images.shape[-2:]
        x0, y0, x1, y1 = self.crop_box
        region = images[..., round(y0 * height) : round(y1 * height), round(x0 * width) : round(x1 * width)]
        return super().preprocess(region)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """512-D embeddings (before L2 normalisation) of standardised 160x160 faces."""
        x = faces
        for name in _TRUNK:
            x = getattr(self.network, name)(x)
        return self.network.last_bn(self.network.last_linear(x.flatten(1)))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        if self.network.logits is None:
            raise NotImplementedError("these FaceNet weights have no logits layer (no classifier)")
        return self.network.logits(embedding)


@TEACHERS.register("facenet")
def facenet(weights: str | None = None, **overrides: Any) -> FaceNet:
    """FaceNet Inception-ResNet-v1 (512-D) from a weights file, or 'facenet-pytorch:vggface2' to download."""
    return FaceNet(weights, **overrides)


@TEACHERS.register("facenet_tiny")
def facenet_tiny(weights: str | None = None, **overrides: Any) -> FaceNet:
    """The same network as facenet (fixed by its weights), with seeded random weights: for tests."""
    config: dict[str, Any] = {"random_init_seed": None if weights else 0, "name": "facenet_tiny"}
    return FaceNet(weights, **{**config, **overrides})
