"""A differentiable thin-plate-spline image warp driven by landmarks, with the image border held fixed.

Cole et al. (CVPR 2017) render a face by moving a texture drawn in a canonical (mean-shape) frame
onto predicted landmarks: the landmark displacements are spread over the whole image by spline
interpolation, x and y separately, with extra points on the border held at zero displacement, and
the texture is resampled bilinearly. Both steps are differentiable, so a loss on the rendered image
reaches the landmarks, not only the texture.

The spline is solved at the *target* points and maps each output pixel back to where it samples
the input (a backward warp), so the content at ``source[k]`` lands exactly on ``target[k]`` and
every output pixel is filled. Points are in pixels with pixel centres at integers (dlib's and
OpenCV's convention): ``(0, 0)`` is the centre of the top-left pixel.

Why not kornia's spline (``get_tps_transform`` / ``warp_points_tps``): it has no smoothing term (and
before kornia 0.9.2 it was no thin-plate spline at all). Where a closed mouth puts two lip points on
one spot its system is singular: on the shapes of 13 real faces its field moves pixels up to 8 times
as far as the farthest landmark moves and folds 2.6 % of the image over, while this spline stays
within 1.25 times and does not fold; in the median the two agree. Nor is it faster: on one CPU thread
kornia 0.9.2 took 1.8-3.8x the time forward and 1.5-1.8x forward + backward (``benchmarks/geometry.py``;
the reason is checked in ``tests/vision/test_geometry_libraries.py``).

Example:
    >>> import torch
    >>> image = torch.rand(1, 3, 32, 32)
    >>> points = torch.tensor([[[10.0, 12.0], [20.0, 12.0], [16.0, 22.0]]])
    >>> torch.allclose(tps_warp(image, points, points), image, atol=1e-5)
    True
    >>> moved = points.clone()
    >>> moved[0, 2] += torch.tensor([0.0, 3.0])
    >>> tps_warp(image, points, moved).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["border_points", "pixels_to_unit", "tps_displacement", "tps_warp", "unit_to_pixels"]


def pixels_to_unit(points: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) of a ``size`` x ``size`` image -> grid_sample's [-1, 1]."""
    return (2.0 * points + 1.0) / size - 1.0


def unit_to_pixels(points: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse of :func:`pixels_to_unit`."""
    return ((points + 1.0) * size - 1.0) / 2.0


def border_points(
    per_side: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``4 * per_side`` points evenly spaced along the image border (corners included), in [-1, 1] units."""
    steps = torch.linspace(-1.0, 1.0, per_side + 1, device=device, dtype=dtype)[:-1]
    ones = torch.ones_like(steps)
    # Walk the four sides clockwise; each side starts at a corner and stops short of the next one.
    sides = [
        torch.stack([steps, -ones], dim=-1),
        torch.stack([ones, steps], dim=-1),
        torch.stack([-steps, ones], dim=-1),
        torch.stack([-ones, -steps], dim=-1),
    ]
    return torch.cat(sides)


def _radial(squared_distance: torch.Tensor) -> torch.Tensor:
    # U(r) = r^2 log r^2, the 2-D thin-plate kernel; the tiny offset keeps log finite at r = 0,
    # where the product (and its gradient through the points) is 0 anyway.
    return squared_distance * torch.log(squared_distance + 1e-12)


def _pairwise_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Differences rather than torch.cdist: exact zeros on the diagonal and a clean gradient there.
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)


def _query_squared(query: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    # |q|^2 - 2 q.c + |c|^2 as one matrix product: the [B, Q, N, 2] differences would cost twice
    # the time at image sizes. Rounding can dip a hair below zero; the kernel needs r^2 >= 0.
    cross = query @ control.transpose(1, 2)
    squared = query.pow(2).sum(-1, keepdim=True) - 2 * cross + control.pow(2).sum(-1).unsqueeze(1)
    return squared.clamp_min(0.0)


def tps_displacement(
    control: torch.Tensor,
    values: torch.Tensor,
    query: torch.Tensor,
    *,
    regularization: float = 1e-5,
) -> torch.Tensor:
    """Thin-plate-spline interpolation of vector values given at control points.

    Args:
        control: Control points [B, N, 2].
        values: Values at the control points [B, N, V] (here: 2-D displacements).
        query: Points to evaluate at [B, Q, 2].
        regularization: Added to the kernel's diagonal; a little smoothing keeps the system well
            conditioned when two control points come close (a landmark on the border, say).

    Returns:
        Interpolated values [B, Q, V].
    """
    batch, count, _ = control.shape
    kernel = _radial(_pairwise_squared(control, control))
    kernel = kernel + regularization * torch.eye(count, device=control.device, dtype=control.dtype)
    affine = torch.cat([torch.ones_like(control[..., :1]), control], dim=-1)  # [B, N, 3]
    zeros = control.new_zeros(batch, 3, 3)
    system = torch.cat([torch.cat([kernel, affine], dim=-1), torch.cat([affine.transpose(1, 2), zeros], dim=-1)], 1)
    rhs = torch.cat([values, values.new_zeros(batch, 3, values.shape[-1])], dim=1)
    # Solved in float64: the system is ill-conditioned where two points nearly meet (dlib puts the
    # inner lips on one spot when a mouth is closed). On real faces a float32 solve lost up to 11 % of
    # the landmarks' gradient, float64 0.5 %, at no measurable cost (benchmarks/geometry.py). MPS has
    # no float64.
    precise = system.dtype if system.device.type == "mps" else torch.float64
    solution = torch.linalg.solve(system.to(precise), rhs.to(precise)).to(system.dtype)
    weights, linear = solution[:, :count], solution[:, count:]
    query_affine = torch.cat([torch.ones_like(query[..., :1]), query], dim=-1)
    return _radial(_query_squared(query, control)) @ weights + query_affine @ linear


def tps_warp(
    image: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    size: int | None = None,
    border_per_side: int = 4,
    flow_size: int | None = None,
    regularization: float = 1e-5,
    padding_mode: str = "border",
) -> torch.Tensor:
    """Warps ``image`` so that the content at each ``source`` point moves to the matching ``target`` point.

    Args:
        image: Images [B, C, H, W] (square).
        source: Points in ``image``, in its pixels [B, K, 2] (x, y).
        target: Where those points go in the output, in the output's pixels [B, K, 2].
        size: Side of the square output; the input's by default.
        border_per_side: Fixed points per image side (zero displacement); 0 fixes none.
        flow_size: Evaluate the displacement field on a ``flow_size`` grid and upsample it
            bilinearly (the field is smooth, so a coarse grid loses little and saves most of the
            cost at large sizes); the output's resolution by default.
        regularization: Thin-plate smoothing (see :func:`tps_displacement`).
        padding_mode: ``grid_sample``'s rule for samples that fall outside the input.

    Returns:
        The warped images [B, C, size, size].
    """
    if image.ndim != 4 or image.shape[-1] != image.shape[-2]:
        raise ValueError(f"expected square images [B, C, H, W], got {tuple(image.shape)}")
    if source.shape != target.shape or source.ndim != 3 or source.shape[-1] != 2:
        raise ValueError(f"source and target must both be [B, K, 2], got {tuple(source.shape)}, {tuple(target.shape)}")
    batch = image.shape[0]
    size = size or image.shape[-1]
    flow_size = flow_size or size
    dtype = torch.promote_types(image.dtype, torch.float32)
    source_u = pixels_to_unit(source.to(dtype), image.shape[-1])
    target_u = pixels_to_unit(target.to(dtype), size)
    control, values = target_u, source_u - target_u
    if border_per_side > 0:
        fixed = border_points(border_per_side, device=image.device, dtype=dtype).expand(batch, -1, -1)
        control = torch.cat([control, fixed], dim=1)
        values = torch.cat([values, torch.zeros_like(fixed)], dim=1)
    # Pixel centres of the flow grid in [-1, 1] units (align_corners=False convention).
    axis = (torch.arange(flow_size, device=image.device, dtype=dtype) * 2 + 1) / flow_size - 1
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    query = torch.stack([grid_x, grid_y], dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
    # Squared distances and the solve lose too much in bf16/fp16, so the spline always runs in fp32.
    with torch.autocast(device_type=image.device.type, enabled=False):
        flow = tps_displacement(control, values, query, regularization=regularization)
    flow = flow.reshape(batch, flow_size, flow_size, 2)
    if flow_size != size:
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False)
        flow = flow.permute(0, 2, 3, 1)
        axis = (torch.arange(size, device=image.device, dtype=dtype) * 2 + 1) / size - 1
        grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0) + flow
    warped = F.grid_sample(image.to(dtype), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return warped.to(image.dtype) if image.dtype.is_floating_point else warped
