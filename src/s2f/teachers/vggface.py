"""VGG-Face (Parkhi et al., BMVC 2015), the paper's teacher: VGG-16, fc7 = 4096-D, fc8 = 2622 identities.

Its weights are not redistributable through a package, so they are read from a file the user
names, never downloaded. The layer names follow the widely used PyTorch conversion
``vgg_face_dag.pth`` (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``), so that file loads as
it is; so does a ``.safetensors`` file with the same keys, with or without a ``features.`` prefix.

Example:
    >>> import torch
    >>> teacher = vggface_tiny()
    >>> teacher.embed_images(torch.zeros(1, 3, 112, 112, dtype=torch.uint8)).shape
    torch.Size([1, 64])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from ..config.weights import load_into, read_state_dict
from ..errors import WeightsError
from .face_teacher import TEACHERS, FaceTeacher

__all__ = ["VGGFace", "vggface", "vggface_tiny"]

# Mean RGB of the VGG-Face training faces on a 0-255 scale; the network takes mean-subtracted pixels.
VGGFACE_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)


class VGGFace(FaceTeacher):
    """VGG-16 face network: conv stages, fc6 -> fc7 (the embedding, after ReLU) -> fc8 (identities).

    Args:
        weights: A ``.safetensors`` or ``.pth`` state dict. Required unless ``random_init_seed`` is set.
        channels: Channels of the five convolution stages.
        convs_per_stage: Convolutions in each stage.
        fc_dim: Width of fc6 and fc7, i.e. the embedding size.
        num_classes: Outputs of fc8, the identity classifier used by the distillation loss.
        image_size: Side of the square input crop.
        random_init_seed: Build with seeded random weights instead of a file (tests and demos).
        name: The name the teacher goes by in shard manifests and saved models.
    """

    pixel_mean = VGGFACE_MEAN
    pixel_std = (1.0, 1.0, 1.0)
    has_classifier = True

    def __init__(
        self,
        weights: str | None = None,
        *,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        convs_per_stage: Sequence[int] = (2, 2, 3, 3, 3),
        fc_dim: int = 4096,
        num_classes: int = 2622,
        image_size: int = 224,
        random_init_seed: int | None = None,
        name: str = "vggface",
    ) -> None:
        super().__init__()
        if weights is None and random_init_seed is None:
            raise WeightsError(
                "VGG-Face needs its weights file: pass weights=/path/to/vgg_face_dag.pth (or .safetensors); "
                "s2f never downloads it"
            )
        self.name = name
        self.embed_dim = fc_dim
        self.image_size = image_size
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = 3
        for stage, (width, count) in enumerate(zip(channels, convs_per_stage, strict=True), start=1):
            for index in range(1, count + 1):
                layers[f"conv{stage}_{index}"] = nn.Conv2d(in_channels, width, 3, padding=1)
                layers[f"relu{stage}_{index}"] = nn.ReLU(inplace=True)
                in_channels = width
            layers[f"pool{stage}"] = nn.MaxPool2d(2, 2)
        self.features = nn.Sequential(layers)
        side = image_size // 2 ** len(channels)
        self.fc6 = nn.Linear(in_channels * side * side, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes)
        if weights is not None:
            self.load_weights(weights)
        else:
            self._init_random(random_init_seed or 0)
        self.freeze()

    def _init_random(self, seed: int) -> None:
        # He initialisation keeps activations at unit scale through every layer, so that a random
        # teacher's embeddings and class logits are spread out enough to learn from.
        # The input is on a 0-255 scale (std about 64 after mean subtraction), hence the first layer's 1/64.
        generator = torch.Generator().manual_seed(seed)
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for index, module in enumerate(layers):
            std = (2.0 / module.weight[0].numel()) ** 0.5 / (64.0 if index == 0 else 1.0)
            with torch.no_grad():
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()

    def load_weights(self, path: str | Path) -> None:
        """Fills the network from a state-dict file; raises :class:`WeightsError` on any mismatch."""
        state = read_state_dict(path, "VGG-Face weights")
        conv_names = {name for name in self.features._modules if name.startswith("conv")}
        renamed = {}
        for key, tensor in state.items():
            # vgg_face_dag.pth names convolutions at the top level; they live under features here.
            renamed[f"features.{key}" if key.split(".")[0] in conv_names else key] = tensor
        load_into(self, renamed, path, f"VGG-Face teacher ({self.embed_dim}-D fc7, {self.fc8.out_features} classes)")

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.fc6(self.features(faces).flatten(1)))
        return torch.relu(self.fc7(hidden))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.fc8(embedding)


@TEACHERS.register("vggface")
def vggface(weights: str | None = None, **overrides: object) -> VGGFace:
    """VGG-Face fc7 (4096-D) with its 2622-way fc8, from a weights file you name (the paper's teacher)."""
    return VGGFace(weights, **overrides)  # type: ignore[arg-type]


@TEACHERS.register("vggface_tiny")
def vggface_tiny(weights: str | None = None, **overrides: object) -> VGGFace:
    """VGG-Face's layout at 4-16 channels, 64-D fc7 and 32 classes, seeded random weights: for tests."""
    config: dict[str, object] = {
        "channels": (4, 8, 8, 16, 16),
        "convs_per_stage": (1, 1, 1, 1, 1),
        "fc_dim": 64,
        "num_classes": 32,
        "random_init_seed": None if weights else 0,
        "name": "vggface_tiny",
    }
    return VGGFace(weights, **{**config, **overrides})  # type: ignore[arg-type]
