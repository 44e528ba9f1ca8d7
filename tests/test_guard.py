"""The integrity guard (stnlib.checks.common.reference_ops_blocked): every route to a sampling grid or
a sampler is refused inside it, the checks' own helpers still work, and honest tensor code runs."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.ops import roi_align

from stnlib import geometry, models, sampling, warps
from stnlib.checks import common

THETA = torch.tensor([[[0.9, -0.2, 0.1], [0.2, 0.9, 0.0]]])
X = torch.rand(1, 1, 5, 6)
SIZE = (1, 1, 5, 6)
HOMOGRAPHY = torch.cat([THETA, torch.tensor([[[0.0, 0.0, 1.0]]])], dim=1)
GRID = F.affine_grid(THETA, SIZE, align_corners=False)

X28 = torch.rand(1, 1, 28, 28)
_TRANSFORMER = models.SpatialTransformer((28, 28))
_HAND_TRANSFORMER = models.SpatialTransformer((28, 28), sampler="stnlib")
_TPS_TRANSFORMER = models.SpatialTransformer((28, 28), transform="tps")  # its grid matrix is solved at build time
_TPS_MATRIX = warps.tps_grid_matrix(warps.tps_control_points(3), (5, 6), align_corners=False)

#: name -> a call that delegates to a reference grid generator or sampler
ROUTES = {
    "F.affine_grid": lambda: F.affine_grid(THETA, SIZE, align_corners=False),
    "F.grid_sample": lambda: F.grid_sample(X, GRID, align_corners=False),
    "torch.grid_sampler": lambda: torch.grid_sampler(X, GRID, 0, 0, False),
    "torch.affine_grid_generator": lambda: torch.affine_grid_generator(THETA, list(SIZE), False),
    "torch.ops.aten.grid_sampler_2d": lambda: torch.ops.aten.grid_sampler_2d(X, GRID, 0, 0, False),
    "torch.ops.aten.affine_grid_generator": lambda: torch.ops.aten.affine_grid_generator(THETA, list(SIZE), False),
    "torch._C._VariableFunctions.grid_sampler_2d": lambda: torch._C._VariableFunctions.grid_sampler_2d(
        X, GRID, 0, 0, False
    ),
    "torchvision rotate": lambda: TF.rotate(X, 30.0),
    "torchvision affine": lambda: TF.affine(X, angle=10.0, translate=[1, 0], scale=1.0, shear=[0.0]),
    "torchvision roi_align (bilinear at a point)": lambda: roi_align(
        X, torch.tensor([[0.0, 2.5, 1.5, 2.5, 1.5]]), output_size=1, sampling_ratio=1, aligned=True
    ),
    "F.interpolate bilinear": lambda: F.interpolate(X, scale_factor=2.0, mode="bilinear"),
    "F.interpolate nearest": lambda: F.interpolate(X, scale_factor=2.0, mode="nearest"),
    "stnlib.sampling.affine_grid": lambda: sampling.affine_grid(THETA, SIZE, align_corners=False),
    "stnlib.sampling.grid_sample": lambda: sampling.grid_sample(X, GRID, align_corners=False),
    "stnlib.warps.base_grid": lambda: warps.base_grid((5, 6), align_corners=False),
    "stnlib.warps.projective_grid (last row 0, 0, 1)": lambda: warps.projective_grid(HOMOGRAPHY, SIZE),
    "stnlib.warps.tps_grid": lambda: warps.tps_grid(torch.zeros(1, 16, 2), warps.tps_control_points(4), SIZE),
    "stnlib.warps.tps_kernel": lambda: warps.tps_kernel(torch.rand(5)),
    "stnlib.warps.tps_system": lambda: warps.tps_system(warps.tps_control_points(3)),
    "stnlib.warps.tps_grid_matrix": lambda: warps.tps_grid_matrix(
        warps.tps_control_points(3), (5, 6), align_corners=False
    ),
    "stnlib.warps.grid_from_tps_matrix (a stored matrix)": lambda: warps.grid_from_tps_matrix(
        _TPS_MATRIX, warps.tps_control_points(3)[None], (5, 6)
    ),
    "a stnlib model's TPS grid": lambda: _TPS_TRANSFORMER.grid(torch.zeros(1, 16, 2)),
    "stnlib.sampling.warp": lambda: sampling.warp(X, THETA),
    "stnlib.geometry.compose_theta": lambda: geometry.compose_theta(rotation_deg=30.0),
    "stnlib.models.similarity_theta": lambda: models.similarity_theta(torch.tensor([[0.1, 1.0, 0.0, 0.0]])),
    "a stnlib model's own sampler": lambda: _TRANSFORMER.sample(X28, THETA),
    "a stnlib model's hand-built sampler": lambda: _HAND_TRANSFORMER.sample(X28, THETA),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_route_is_refused(route):
    call = ROUTES[route]
    call()  # works outside the guard
    with common.reference_ops_blocked():
        with pytest.raises(RuntimeError, match="not available"):
            call()
    call()  # and again after it


def test_dispatch_mode_names_the_kernel():
    with common.reference_ops_blocked():
        with pytest.raises(RuntimeError, match="aten::grid_sampler_2d is not available while this exercise is graded"):
            torch.ops.aten.grid_sampler_2d(X, GRID, 0, 0, False)


def test_checks_own_helpers_may_use_the_kernels():
    with common.reference_ops_blocked(), common.allow_reference_kernels():
        out = torch.ops.aten.grid_sampler_2d(X, GRID, 0, 0, False)
    torch.testing.assert_close(out, F.grid_sample(X, GRID, align_corners=False))


def test_honest_tensor_code_runs_and_differentiates():
    """What an answer by hand uses (indexing, floor, gather, matmul, autograd) is untouched."""
    theta = THETA.clone().requires_grad_(True)
    with common.reference_ops_blocked():
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 6), indexing="ij")
        base = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
        grid = base @ theta.transpose(1, 2)
        x0 = torch.floor(grid[..., 0]).long().clamp(0, 5)
        value = (X.flatten()[x0] * grid[..., 0]).sum()
        value.backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


class TestMessages:
    """check_close previews the row that holds the mismatch, and never prints -0."""

    def test_preview_is_the_mismatching_row(self):
        expected = torch.zeros(3, 2, 8)
        got = expected.clone()
        got[2, 1, 7] = 0.5
        with pytest.raises(common.CheckFailed) as err:
            common.check_close(got, expected, fn="f", on="a batch")
        text = str(err.value)
        assert "at index (2, 1, 7)" in text
        assert "expected[2, 1, :] [..., 0, 0, 0, 0, 0, 0]" in text
        assert "got[2, 1, :]      [..., 0, 0, 0, 0, 0, 0.5]" in text

    def test_negative_zero_prints_as_zero(self):
        expected = torch.tensor([[1.0, 1.0], [-0.0, 2.0]])
        with pytest.raises(common.CheckFailed) as err:
            common.check_close(torch.tensor([[1.0, 1.0], [0.0, 3.0]]), expected, fn="f", on="x")
        text = str(err.value)
        assert "expected[1, :] [0, 2]" in text and not re.search(r"[\[ ]-0[,\]]", text)
