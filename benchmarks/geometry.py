"""s2f's geometry against the libraries that could do it, in one run: speed and exactness, as ratios.

Each function is timed next to its library counterpart on realistic input: the shapes of 13 real faces
(dlib's 68 points, ``tests/fixtures/geometry/face_landmarks.npz``) and face-sized images. Ratios are
library / s2f time in the same run, so they hold on loaded or other machines where the times do not.

- ``tps_warp`` (the face decoder's renderer) against kornia's thin-plate spline (``get_tps_transform`` +
  ``warp_points_tps`` on the same flow grid, the same upsampling and sampling), forward and
  forward + backward, at the decoder's sizes. Exactness: where each landmark's content lands (px), the
  largest displacement anywhere over the largest landmark displacement (``overshoot``; a thin-plate
  spline stays near 1), the share of the flow grid where the map folds over, and the image and
  gradients against the thin-plate spline in float64.
- ``piecewise_affine`` (the synthetic world's morph) against scikit-image's ``PiecewiseAffineTransform``
  + ``warp`` and, where OpenCV is installed, its usual per-triangle ``warpAffine``. Exactness: grey
  levels against the same warp in float64, unrounded.
- ``similarity_transform`` against scikit-image's ``SimilarityTransform`` and OpenCV's
  ``estimateAffinePartial2D``. Exactness: pixels between the 68 mapped points and the closed-form
  least-squares fit.
- ``warp_similarity`` (kornia's ``warp_affine`` since it replaced a hand-written grid) against that
  hand-written grid, kept below as the baseline, and ``cv2.warpAffine``. Exactness: grey levels against
  the hand-written warp in float64, unrounded.

Every time is the fastest of its repeats, which the implementations take in turns: other work on shared
cores only ever slows a run down, and falls on all of them alike. torch runs one thread unless told
otherwise: on loaded cores a second thread mostly waits for the first.

    HF_HUB_OFFLINE=1 python benchmarks/geometry.py [--quick] [--batch 16] [--repeats 5] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_tps_transform, warp_points_tps
from skimage.transform import PiecewiseAffineTransform, SimilarityTransform, warp

from _table import format_table, machine
from s2f.decoders.tps import border_points, pixels_to_unit, tps_displacement, tps_warp
from s2f.synth.face_sources import canonical_shape
from s2f.synth.morph import extended_points, piecewise_affine
from s2f.vision.alignment import ALIGNMENT_POINTS, mean_shape, shrink_before_warp, similarity_transform, warp_similarity

try:
    import cv2
except ImportError:  # OpenCV is no dependency of s2f; its rows are shown where it happens to be installed
    cv2 = None

__all__ = [
    "FACES",
    "kornia_tps_map",
    "kornia_tps_warp",
    "main",
    "real_face_targets",
    "skimage_piecewise_affine",
    "tps_map",
]

FACES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "geometry" / "face_landmarks.npz"
CROPS = FACES.with_name("warp_similarity.npz")
BANK_SIZE = 256  # the frame of FACES (the synth source bank's)
DECODER_FACE_FRACTION = 0.6  # mean_shape's default: the decoder's frame
TPS_SIZES = ((64, 32), (128, 56))  # (image side, flow_size) of the decoder's tiny and default recipes


# --- thin-plate spline ---------------------------------------------------------------------------


def real_face_targets(
    size: int, count: int, *, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's warp on real faces: mean shape [count, 68, 2] -> real face shapes, both in ``size`` pixels.

    The faces' offsets from the bank's mean shape, scaled to the decoder's frame, added to its mean shape:
    what a decoder that predicts these faces' landmarks renders (``WarpDecoder.render``).
    """
    faces = np.load(FACES)["landmarks"].astype(np.float64)
    offsets = (faces - canonical_shape(BANK_SIZE)) * (DECODER_FACE_FRACTION * size) / (0.5 * BANK_SIZE)
    mean = torch.tensor(mean_shape(size), dtype=dtype).expand(count, -1, -1)
    target = mean + torch.tensor(offsets[np.arange(count) % len(faces)], dtype=dtype)
    return mean.contiguous(), target


def _control_points(source: torch.Tensor, target: torch.Tensor, size: int, per_side: int) -> tuple[Any, Any]:
    """Source and target points in [-1, 1] units with ``tps_warp``'s fixed border points appended."""
    fixed = border_points(per_side, dtype=source.dtype).expand(len(source), -1, -1)
    return (
        torch.cat([pixels_to_unit(source, size), fixed], 1),
        torch.cat([pixels_to_unit(target, size), fixed], 1),
    )


def tps_map(source: torch.Tensor, target: torch.Tensor, size: int, query: torch.Tensor) -> torch.Tensor:
    """``tps_warp``'s backward map (output -> input, [-1, 1] units) at ``query`` [B, Q, 2]."""
    source_u, target_u = _control_points(source, target, size, 4)
    return query + tps_displacement(target_u, source_u - target_u, query)


def kornia_tps_map(source: torch.Tensor, target: torch.Tensor, size: int, query: torch.Tensor) -> torch.Tensor:
    """kornia's thin-plate backward map, composed as its documentation says for ``warp_image_tps``: fitted from
    the target points to the source points, its kernels centred on the target points (its first argument)."""
    source_u, target_u = _control_points(source, target, size, 4)
    with warnings.catch_warnings():  # its notice asks for exactly this: the first argument as kernel_centers
        warnings.filterwarnings("ignore", message=".*kernel_centers.*", category=FutureWarning)
        kernel, affine = get_tps_transform(target_u, source_u)
    return warp_points_tps(query, target_u, kernel, affine)


def kornia_tps_warp(image: torch.Tensor, source: torch.Tensor, target: torch.Tensor, *, flow_size: int) -> torch.Tensor:
    """``tps_warp``'s pipeline with kornia's spline: the field on a coarse grid, upsampled, then sampled."""
    batch, size = image.shape[0], image.shape[-1]
    coarse = _pixel_centers(flow_size, image.dtype).expand(batch, -1, -1)
    flow = (kornia_tps_map(source, target, size, coarse) - coarse).reshape(batch, flow_size, flow_size, 2)
    flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False)
    grid = _pixel_centers(size, image.dtype).reshape(1, size, size, 2) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _pixel_centers(size: int, dtype: torch.dtype) -> torch.Tensor:
    axis = (torch.arange(size, dtype=dtype) * 2 + 1) / size - 1
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([grid_x, grid_y], -1).reshape(1, -1, 2)


def _folded_share(mapped: torch.Tensor, side: int) -> float:
    """Share of grid cells where the backward map's Jacobian determinant is not positive (the image folds)."""
    grid = mapped.reshape(-1, side, side, 2)
    dx, dy = grid[:, :-1, 1:] - grid[:, :-1, :-1], grid[:, 1:, :-1] - grid[:, :-1, :-1]
    return float(((dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]) <= 0).double().mean())


@dataclass
class TpsRow:
    size: int
    flow: int
    library: str
    forward_ms: float
    train_ms: float
    forward_ratio: float | None
    train_ratio: float | None
    landing_px: float
    overshoot_median: float
    overshoot_max: float
    folded_pct: float
    image_error: float
    landmark_grad_error: float
    texture_grad_error: float


TPS_COLUMNS = (
    ("size", "size", "{}"),
    ("flow", "flow", "{}"),
    ("spline", "library", "{}"),
    ("fwd ms", "forward_ms", "{:.2f}"),
    ("fwd+bwd ms", "train_ms", "{:.2f}"),
    ("fwd x", "forward_ratio", "{:.2f}"),
    ("fwd+bwd x", "train_ratio", "{:.2f}"),
    ("landing px", "landing_px", "{:.2g}"),
    ("overshoot median", "overshoot_median", "{:.3g}"),
    ("overshoot max", "overshoot_max", "{:.3g}"),
    ("folded %", "folded_pct", "{:.2f}"),
    ("image vs fp64", "image_error", "{:.1e}"),
    ("grad landmarks rel", "landmark_grad_error", "{:.1e}"),
    ("grad texture rel", "texture_grad_error", "{:.1e}"),
)


def _texture(size: int, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The astronaut's head at ``size``, with per-image noise: real edges and flat areas."""
    photo = torch.from_numpy(skimage.data.astronaut()[20:340, 60:380]).permute(2, 0, 1)[None].double() / 255
    photo = F.interpolate(photo, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    noise = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (photo + 0.03 * noise).clamp(0, 1).to(dtype)


def _warp_and_gradients(warp_fn: Callable[..., torch.Tensor], texture: torch.Tensor, mean: torch.Tensor, target: Any):
    texture, target = texture.clone().requires_grad_(True), target.clone().requires_grad_(True)
    image = warp_fn(texture, mean, target)
    weights = torch.linspace(-1, 1, image.numel(), dtype=image.dtype).reshape(image.shape)  # a loss with texture
    (image * weights).sum().backward()
    return image.detach(), target.grad, texture.grad


def _without_gradients(warp_fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        warp_fn(*inputs)


def _relative(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference).abs().max() / reference.abs().max())


def bench_tps(batch: int, repeats: int, sizes: Sequence[tuple[int, int]]) -> list[TpsRow]:
    """Both splines at each (size, flow_size): speed, and exactness against the thin-plate spline in float64."""
    rows = []
    for size, flow in sizes:
        mean, target = real_face_targets(size, batch)
        texture = _texture(size, batch)
        warps = {
            "s2f": partial(_flow_sized, tps_warp, flow),
            "kornia": partial(_flow_sized, kornia_tps_warp, flow),
        }
        maps = {"s2f": tps_map, "kornia": kornia_tps_map}
        timings = {}
        for library, warp_fn in warps.items():
            timings[library, "forward"] = partial(_without_gradients, warp_fn, texture, mean, target)
            timings[library, "train"] = partial(_warp_and_gradients, warp_fn, texture, mean, target)
        seconds = fastest_each(timings, repeats)
        reference = _warp_and_gradients(warps["s2f"], texture.double(), mean.double(), target.double())
        source_u, target_u = pixels_to_unit(mean.double(), size), pixels_to_unit(target.double(), size)
        query = _pixel_centers(flow, torch.float64).expand(batch, -1, -1)
        moved = (target - mean).double().norm(dim=-1).amax(-1)  # each face's largest landmark move, px
        for library, warp_fn in warps.items():
            image, landmark_grad, texture_grad = _warp_and_gradients(warp_fn, texture, mean, target)
            landing = maps[library](mean.double(), target.double(), size, target_u) - source_u
            field = maps[library](mean.double(), target.double(), size, query)
            overshoot = (field - query).norm(dim=-1).amax(-1) * (size / 2) / moved
            forward, train = seconds[library, "forward"], seconds[library, "train"]
            own = library == "s2f"
            rows.append(
                TpsRow(
                    size=size,
                    flow=flow,
                    library=library,
                    forward_ms=1e3 * forward,
                    train_ms=1e3 * train,
                    forward_ratio=None if own else forward / seconds["s2f", "forward"],
                    train_ratio=None if own else train / seconds["s2f", "train"],
                    landing_px=float(landing.norm(dim=-1).amax()) * size / 2,
                    overshoot_median=float(overshoot.median()),
                    overshoot_max=float(overshoot.max()),
                    folded_pct=100 * _folded_share(field, flow),
                    image_error=float((image.double() - reference[0]).abs().amax()),
                    landmark_grad_error=_relative(landmark_grad, reference[1]),
                    texture_grad_error=_relative(texture_grad, reference[2]),
                )
            )
    return rows


def _flow_sized(warp_fn: Callable[..., torch.Tensor], flow_size: int, *inputs: torch.Tensor) -> torch.Tensor:
    return warp_fn(*inputs, flow_size=flow_size)


# --- piecewise affine, similarity fit, similarity warp --------------------------------------------


def skimage_piecewise_affine(image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """``piecewise_affine`` through scikit-image (same triangles: Delaunay of the target points)."""
    return np.clip(_skimage_warp_float(image, source_points, target_points) + 0.5, 0, 255).astype(np.uint8)


def _skimage_warp_float(image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    transform = _estimated(PiecewiseAffineTransform, np.asarray(target_points, float), np.asarray(source_points, float))
    return warp(image.astype(np.float64), transform, order=1, mode="edge", preserve_range=True)


def _estimated(kind: type, source: np.ndarray, target: np.ndarray) -> Any:
    """``kind.from_estimate`` (scikit-image >= 0.26) or the older ``estimate``."""
    if hasattr(kind, "from_estimate"):
        return kind.from_estimate(source, target)
    transform = kind()
    transform.estimate(source, target)
    return transform


def _opencv_piecewise_affine(image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """The usual OpenCV recipe: each target triangle's box warped from the source, pasted under its mask."""
    from scipy.spatial import Delaunay

    target, source = np.asarray(target_points, np.float32), np.asarray(source_points, np.float32)
    out, (height, width) = image.copy(), image.shape[:2]
    for corner in Delaunay(target).simplices:
        x0, y0 = np.floor(target[corner].min(0)).astype(int).clip(0)
        x1, y1 = np.minimum(np.ceil(target[corner].max(0)).astype(int) + 1, [width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        box_to_source = cv2.getAffineTransform(target[corner] - np.float32([x0, y0]), source[corner])
        patch = cv2.warpAffine(
            image, box_to_source, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((target[corner] - [x0, y0]) * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        out[y0:y1, x0:x1][mask > 0] = patch[mask > 0]
    return out


def _handwritten_warp_similarity(
    image: np.ndarray, matrix: np.ndarray, size: int, padding: str, *, exact: bool = False
) -> np.ndarray:
    """``warp_similarity`` as it was before kornia's ``warp_affine`` replaced its grid: the baseline.

    ``exact``: the whole warp in float64 and unrounded, the reference for every implementation's error.
    """
    dtype = torch.float64 if exact else torch.float32
    pixels = torch.from_numpy(np.array(image, dtype=np.float64)).permute(2, 0, 1)[None].to(dtype)
    pixels, matrix = shrink_before_warp(pixels, np.asarray(matrix, np.float64))
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    axis = np.arange(size, dtype=np.float64)
    grid_x, grid_y = np.meshgrid(axis, axis)
    points = np.stack([grid_x, grid_y, np.ones_like(grid_x)], axis=-1) @ inverse.T
    height, width = pixels.shape[-2:]
    unit = np.stack([(2 * points[..., 0] + 1) / width - 1, (2 * points[..., 1] + 1) / height - 1], axis=-1)
    grid = torch.from_numpy(unit).to(dtype)[None]
    crop = F.grid_sample(pixels, grid, mode="bilinear", padding_mode=padding, align_corners=False)[0].permute(1, 2, 0)
    return crop.numpy() if exact else crop.round().clamp(0, 255).to(torch.uint8).numpy()


def _closed_form_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity as a linear problem in complex numbers: t = a s + b."""
    source_c, target_c = source @ [1, 1j], target @ [1, 1j]
    (a, b), *_ = np.linalg.lstsq(np.stack([source_c, np.ones_like(source_c)], 1), target_c, rcond=None)
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


@dataclass
class Row:
    function: str
    case: str
    library: str
    ms: float
    ratio: float | None
    error: float
    error_unit: str


COLUMNS = (
    ("function", "function", "{}"),
    ("case", "case", "{}"),
    ("implementation", "library", "{}"),
    ("ms", "ms", "{:.3f}"),
    ("x s2f", "ratio", "{:.2f}"),
    ("max error", "error", "{:.2g}"),
    ("unit", "error_unit", "{}"),
)


def _rows(function: str, case: str, unit: str, runs: dict[str, tuple[Callable[[], Any], float]], repeats: int):
    """One row per implementation; the first is s2f's, the ratios are to it."""
    times = fastest_each({name: action for name, (action, _) in runs.items()}, repeats)
    own = next(iter(times.values()))
    return [
        Row(
            function,
            case,
            name,
            1e3 * seconds,
            seconds / own if name != next(iter(times)) else None,
            runs[name][1],
            unit,
        )
        for name, seconds in times.items()
    ]


def bench_piecewise_affine(faces: int, repeats: int) -> list[Row]:
    """Real faces onto the mean shape in the bank's 256-pixel frame, as the morph's texture normalisation does."""
    photo = np.ascontiguousarray(skimage.data.astronaut()[::2, ::2])  # 256 x 256
    mean_points = extended_points(canonical_shape(BANK_SIZE), BANK_SIZE)
    rows = []
    for index, landmarks in enumerate(np.load(FACES)["landmarks"][:faces]):
        points = extended_points(landmarks, BANK_SIZE)
        exact = _skimage_warp_float(photo, points, mean_points)
        implementations = {"s2f": piecewise_affine, "scikit-image": skimage_piecewise_affine}
        if cv2 is not None:
            implementations["opencv"] = _opencv_piecewise_affine
        calls = {name: partial(warp_fn, photo, points, mean_points) for name, warp_fn in implementations.items()}
        runs = {name: (call, float(np.abs(call() - exact).max())) for name, call in calls.items()}
        rows += _rows("piecewise_affine", f"face {index}, 256 px", "grey levels", runs, repeats)
    return rows


def bench_similarity_transform(repeats: int) -> list[Row]:
    """All 13 faces: rotated, scaled and moved into a photo with 0.5 px of landmark noise, fitted onto the crop."""
    faces = np.load(FACES)["landmarks"].astype(np.float64)
    rng = np.random.default_rng(0)
    index, crop_points = list(ALIGNMENT_POINTS), mean_shape(224)[list(ALIGNMENT_POINTS)]
    photos = []
    for face in faces:
        angle, scale = np.radians(rng.uniform(-20, 20)), rng.uniform(0.5, 3.0)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        photos.append(face @ rotation.T + rng.uniform(0, 400, 2) + rng.normal(0, 0.5, face.shape))
    fits: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "s2f": similarity_transform,
        "scikit-image": lambda s, t: _estimated(SimilarityTransform, s, t).params[:2],
    }
    if cv2 is not None:
        # Every point an inlier, so its Levenberg-Marquardt refinement is a least-squares fit over all of them.
        fits["opencv"] = lambda s, t: cv2.estimateAffinePartial2D(s, t, method=cv2.RANSAC, ransacReprojThreshold=1e4)[0]

    def error(fit: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
        worst = 0.0
        for points in photos:
            matrix, exact = fit(points[index], crop_points), _closed_form_similarity(points[index], crop_points)
            worst = max(
                worst,
                float(
                    np.abs((points @ matrix[:, :2].T + matrix[:, 2]) - (points @ exact[:, :2].T + exact[:, 2])).max()
                ),
            )
        return worst

    runs = {
        name: ((lambda fit=fit: [fit(points[index], crop_points) for points in photos]), error(fit))
        for name, fit in fits.items()
    }
    rows = _rows("similarity_transform", f"{len(faces)} faces", "px", runs, repeats)
    for row in rows:  # per fit, not per 13
        row.ms /= len(faces)
    return rows


def bench_warp_similarity(repeats: int) -> list[Row]:
    """The three recorded crops of the astronaut photo: a shrink, an enlargement and a rotation past the edge."""
    photo, crops = skimage.data.astronaut(), np.load(CROPS)
    rows = []
    for case in sorted({name.split("/")[0] for name in crops.files}):
        matrix, size = crops[f"{case}/matrix"], crops[f"{case}/crop"].shape[0]
        padding = str(crops[f"{case}/padding"])
        exact = _handwritten_warp_similarity(photo, matrix, size, padding, exact=True)
        warps: dict[str, Callable[[], np.ndarray]] = {
            "s2f (kornia)": lambda matrix=matrix, size=size, padding=padding: warp_similarity(
                photo, matrix, size, padding=padding
            ),
            "hand-written": lambda matrix=matrix, size=size, padding=padding: _handwritten_warp_similarity(
                photo, matrix, size, padding
            ),
        }
        if cv2 is not None:
            border = {"border": cv2.BORDER_REPLICATE, "zeros": cv2.BORDER_CONSTANT, "reflection": cv2.BORDER_REFLECT}
            border = border[padding]
            warps["opencv, no antialias"] = lambda matrix=matrix, size=size, border=border: cv2.warpAffine(
                photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border
            )
        runs = {name: (action, float(np.abs(action() - exact).max())) for name, action in warps.items()}
        rows += _rows("warp_similarity", case, "grey levels", runs, repeats)
    return rows


# --- run ------------------------------------------------------------------------------------------


def fastest_each(actions: dict[Any, Callable[[], Any]], repeats: int) -> dict[Any, float]:
    """Seconds of each action's fastest call, after one untimed call each.

    The actions take turns, so load from other jobs falls on all of them alike and the ratios hold.
    """
    for action in actions.values():
        action()
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(repeats):
        for key, action in actions.items():
            began = time.perf_counter()
            action()
            best[key] = min(best[key], time.perf_counter() - began)
    return best


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px only, batch 4, one repeat, one face: a smoke test")
    parser.add_argument("--batch", type=int, default=16, help="images per thin-plate warp (the decoder's batch)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure; the fastest counts")
    parser.add_argument("--faces", type=int, default=3, help="real faces warped piecewise-affinely")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 0: torch's default (1: steady ratios)")
    parser.add_argument("--json", type=Path, help="also write the machine and every row here")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.faces = 4, 1, 1
    return args


def main(argv: Sequence[str] | None = None) -> tuple[list[TpsRow], list[Row]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    about = machine()
    print(f"# {about['cpu']}, {about['threads']} threads, torch {about['torch']}", end="")
    print(f", load average {about['load_average']:.2f}")
    print(f"# opencv: {cv2.__version__ if cv2 is not None else 'not installed, its rows left out'}")
    tps_rows = bench_tps(args.batch, args.repeats, TPS_SIZES[:1] if args.quick else TPS_SIZES)
    print(f"\n## tps_warp against kornia's thin-plate spline: batch {args.batch}, fastest of {args.repeats}")
    print(format_table(tps_rows, TPS_COLUMNS))
    rows = bench_piecewise_affine(args.faces, args.repeats)
    rows += bench_similarity_transform(max(args.repeats, 20))
    rows += bench_warp_similarity(args.repeats)
    print(f"\n## piecewise_affine, similarity_transform, warp_similarity: fastest of {args.repeats} (fits: 20)")
    print(format_table(rows, COLUMNS))
    if args.json:
        record = {"machine": about, "tps": [asdict(r) for r in tps_rows], "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(record, indent=2))
    return tps_rows, rows


if __name__ == "__main__":
    main()
