"""The thin-plate-spline warp on its own, on a real photo: identity, locality, fixed border, gradients."""

from __future__ import annotations

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from s2f.decoders.tps import border_points, pixels_to_unit, tps_displacement, tps_warp, unit_to_pixels
from s2f.vision.alignment import mean_shape

SIZE = 96
NOSE_TIP = 30


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The astronaut's head and shoulders, [1, 3, 96, 96] in [0, 1]: real texture, edges and flat areas."""
    pixels = torch.from_numpy(skimage.data.astronaut()[20:340, 60:380]).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(pixels, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def shape() -> torch.Tensor:
    return torch.tensor(mean_shape(SIZE), dtype=torch.float32)[None]


def test_identity_landmarks_give_the_input_back(photo: torch.Tensor, shape: torch.Tensor) -> None:
    # Exact up to float rounding of the sampling grid (pixel centres sample themselves).
    torch.testing.assert_close(tps_warp(photo, shape, shape), photo, atol=1e-6, rtol=0)
    torch.testing.assert_close(tps_warp(photo, shape, shape, flow_size=SIZE // 4), photo, atol=1e-6, rtol=0)
    jittered = shape + torch.randn_like(shape)
    torch.testing.assert_close(tps_warp(photo, jittered, jittered), photo, atol=1e-6, rtol=0)


def test_coordinates_round_trip_and_border_points_sit_on_the_edge() -> None:
    points = torch.tensor([[0.0, 0.0], [95.0, 47.5], [12.25, 80.0]])
    torch.testing.assert_close(unit_to_pixels(pixels_to_unit(points, SIZE), SIZE), points)
    assert pixels_to_unit(torch.tensor([0.0]), SIZE).item() == pytest.approx(-1 + 1 / SIZE)
    border = border_points(4)
    assert border.shape == (16, 2) and bool((border.abs().amax(-1) == 1).all())
    assert len({tuple(p) for p in border.tolist()}) == 16  # corners once each


def test_moving_one_landmark_moves_the_content_near_it_and_nothing_far(
    photo: torch.Tensor, shape: torch.Tensor
) -> None:
    source = shape.round()  # landmarks on pixel centres, so content can be compared pixel for pixel
    moved = source.clone()
    moved[0, NOSE_TIP, 1] += 6.0  # the nose tip, 6 pixels down
    warped = tps_warp(photo, source, moved)

    # What was at the old position is now at the new one.
    x, y = source[0, NOSE_TIP].long().tolist()
    torch.testing.assert_close(warped[0, :, y + 6, x], photo[0, :, y, x], atol=0.01, rtol=0)
    assert (warped[0, :, y + 6, x] - photo[0, :, y + 6, x]).abs().max() > 0.05  # and the content there changed

    # Far from the moved point (other landmarks pinned, border fixed) the image does not change.
    grid = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="xy"), -1).float()
    distance = (grid - moved[0, NOSE_TIP]).norm(dim=-1)
    change = (warped - photo).abs().amax(1)[0]
    assert change[distance > 30].max() < 0.02
    assert change[distance < 6].max() > 0.1


def test_displacement_is_exact_at_the_points_and_zero_on_the_border(shape: torch.Tensor) -> None:
    control = pixels_to_unit(shape, SIZE)
    control = torch.cat([control, border_points(4)[None]], dim=1)
    values = torch.zeros_like(control)
    values[0, NOSE_TIP] = torch.tensor([0.05, -0.1])
    at_points = tps_displacement(control, values, control, regularization=1e-6)
    torch.testing.assert_close(at_points, values, atol=1e-4, rtol=0)
    edge = torch.stack([torch.linspace(-1, 1, 33), torch.full((33,), -1.0)], -1)[None]  # the whole top edge
    assert tps_displacement(control, values, edge).abs().max() < 2e-3


def test_gradients_reach_the_landmarks_and_recover_a_displacement(photo: torch.Tensor, shape: torch.Tensor) -> None:
    truth = shape.clone()
    truth[0, NOSE_TIP] += torch.tensor([3.0, 4.0])
    reference = tps_warp(photo, shape, truth)

    guess = shape.clone().requires_grad_(True)
    loss = (tps_warp(photo, shape, guess) - reference).abs().mean()
    loss.backward()
    assert guess.grad is not None and torch.isfinite(guess.grad).all()
    assert guess.grad[0, NOSE_TIP].abs().sum() > 0

    # Following the gradient moves the landmark to where the content went.
    optimizer = torch.optim.Adam([guess], lr=0.5)
    for _ in range(25):
        optimizer.zero_grad()
        (tps_warp(photo, shape, guess) - reference).abs().mean().backward()
        optimizer.step()
    before = (shape[0, NOSE_TIP] - truth[0, NOSE_TIP]).norm()
    after = (guess.detach()[0, NOSE_TIP] - truth[0, NOSE_TIP]).norm()
    assert after < 0.25 * before, (before, after)


def test_a_coarse_flow_grid_and_another_output_size_stay_close(photo: torch.Tensor, shape: torch.Tensor) -> None:
    target = shape + torch.randn(shape.shape, generator=torch.Generator().manual_seed(0)) * 2.0
    exact = tps_warp(photo, shape, target)
    coarse = tps_warp(photo, shape, target, flow_size=SIZE // 4)
    assert (coarse - exact).abs().mean() < 0.01
    # The same warp rendered at half the size: target points are in the output's pixels.
    half = tps_warp(photo, shape, (target + 0.5) / 2 - 0.5, size=SIZE // 2)
    downsampled = F.interpolate(exact, size=(SIZE // 2, SIZE // 2), mode="bilinear", antialias=True)
    assert half.shape == (1, 3, SIZE // 2, SIZE // 2) and (half - downsampled).abs().mean() < 0.03


def test_bad_shapes_are_errors(photo: torch.Tensor, shape: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="square"):
        tps_warp(photo[..., :50], shape, shape)
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        tps_warp(photo, shape, shape[:, :10])
