"""stnlib.warps' thin-plate splines against oracles: torch's affine_grid for affine-only splines, the
control points themselves (a TPS interpolates them), the formulas written another way, and gradcheck."""

import math

import pytest
import torch
import torch.nn.functional as F

from stnlib import warps

ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def affine_offsets(theta: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """Offsets that move every control point by the affine map theta (N, 2, 3): theta @ (c, 1) - c."""
    homogeneous = torch.cat([control, torch.ones(len(control), 1, dtype=control.dtype)], dim=1)  # (K, 3)
    return homogeneous @ theta.transpose(1, 2) - control


class TestKernel:
    def test_values_by_hand(self):
        r2 = torch.tensor([0.0, 0.25, 1.0, 2.0, 9.0], dtype=torch.float64)
        expected = torch.tensor([0.0] + [v * math.log(v) for v in (0.25, 1.0, 2.0, 9.0)], dtype=torch.float64)
        torch.testing.assert_close(warps.tps_kernel(r2), expected)

    def test_gradient_is_finite_at_zero(self):
        r2 = torch.tensor([0.0, 0.5], dtype=torch.float64, requires_grad=True)
        warps.tps_kernel(r2).sum().backward()
        assert torch.isfinite(r2.grad).all()
        assert r2.grad[1].item() == pytest.approx(math.log(0.5) + 1.0)  # d/dr2 (r2 log r2) = log r2 + 1


class TestSystem:
    def test_matches_the_formula_written_with_loops(self):
        control = warps.tps_control_points(3, dtype=torch.float64) + 0.05 * torch.randn(
            9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
        )
        k = len(control)
        expected = torch.zeros(k + 3, k + 3, dtype=torch.float64)
        for i in range(k):
            for j in range(k):
                r2 = float(((control[i] - control[j]) ** 2).sum())
                expected[i, j] = r2 * math.log(r2) if r2 > 0 else 0.0
            row = [1.0, float(control[i, 0]), float(control[i, 1])]
            expected[i, k:] = torch.tensor(row, dtype=torch.float64)
            expected[k:, i] = torch.tensor(row, dtype=torch.float64)
        torch.testing.assert_close(warps.tps_system(control), expected)

    def test_grid_matrix_rows_sum_to_one(self):
        matrix = warps.tps_grid_matrix(warps.tps_control_points(4), (5, 6), align_corners=False)
        assert matrix.shape == (30, 16)
        torch.testing.assert_close(matrix.sum(1), torch.ones(30), atol=1e-5, rtol=0)


class TestGrid:
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_affine_only_spline_is_affine_grid(self, dtype, align_corners):
        """Oracle: move the control points by one affine map and the TPS is that map, as torch draws it."""
        g = torch.Generator().manual_seed(1)
        theta = torch.eye(2, 3, dtype=dtype) + 0.3 * torch.randn(3, 2, 3, dtype=dtype, generator=g)
        control = warps.tps_control_points(4, dtype=dtype)
        size = (3, 1, 7, 9)
        got = warps.tps_grid(affine_offsets(theta, control), control, size, align_corners=align_corners)
        expected = F.affine_grid(theta, size, align_corners=align_corners)
        torch.testing.assert_close(got, expected, atol=ATOL[dtype], rtol=0)
        torch.testing.assert_close(warps.tps_affine_theta(affine_offsets(theta, control), control), theta)

    def test_interpolates_the_control_points(self):
        """With align_corners=True on a 7x7 output the 4x4 control points sit on pixels 0, 2, 4, 6."""
        control = warps.tps_control_points(4, dtype=torch.float64)
        offsets = 0.2 * torch.randn(2, 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        grid = warps.tps_grid(offsets, control, (2, 1, 7, 7), align_corners=True)
        at_control = grid[:, ::2, ::2].reshape(2, 16, 2)  # row by row, as tps_control_points
        torch.testing.assert_close(at_control, control + offsets, atol=1e-10, rtol=0)

    def test_zero_offsets_are_the_identity(self):
        control = warps.tps_control_points(3)
        grid = warps.tps_grid(torch.zeros(1, 9, 2), control, (1, 1, 5, 4), align_corners=False)
        torch.testing.assert_close(grid, F.affine_grid(torch.eye(2, 3)[None], (1, 1, 5, 4), align_corners=False))

    def test_bends_where_affine_cannot(self):
        """Moving only the middle control point bends the grid: no affine map reproduces it."""
        control = warps.tps_control_points(3, dtype=torch.float64)
        offsets = torch.zeros(1, 9, 2, dtype=torch.float64)
        offsets[0, 4, 0] = 0.3
        grid = warps.tps_grid(offsets, control, (1, 1, 9, 9), align_corners=True)
        assert grid[0, 4, 4, 0].item() == pytest.approx(0.3, abs=1e-10)  # the centre reads 0.3 to the right
        assert grid[0, 0, 0].tolist() == pytest.approx([-1.0, -1.0], abs=1e-10)  # the corners stay put
        affine = warps.tps_affine_theta(offsets, control)
        assert (grid - F.affine_grid(affine, (1, 1, 9, 9), align_corners=True)).abs().max() > 0.1

    def test_gradcheck(self):
        control = warps.tps_control_points(3, dtype=torch.float64)
        offsets = 0.1 * torch.randn(2, 9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        offsets.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda o: warps.tps_grid(o, control, (2, 1, 4, 5)), (offsets,))

    def test_batch_matrix_equals_solving_per_sample(self):
        control = warps.tps_control_points(4, dtype=torch.float64)
        offsets = 0.1 * torch.randn(3, 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        matrix = warps.tps_grid_matrix(control, (6, 5), align_corners=False)
        batch = warps.grid_from_tps_matrix(matrix, control + offsets, (6, 5))
        for i in range(3):
            one = warps.tps_grid(offsets[i : i + 1], control, (1, 1, 6, 5), align_corners=False)
            torch.testing.assert_close(batch[i : i + 1], one)


class TestAffinePart:
    def test_homographies_of_any_batch_shape(self):
        """The affine part of a homography is its first two rows over h33, whatever batch axes it has."""
        h = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(5)) + 3 * torch.eye(3)
        expected = torch.stack([torch.stack([h[i, j, :2] / h[i, j, 2, 2] for j in range(3)]) for i in range(2)])
        torch.testing.assert_close(warps.affine_part(h), expected)
        theta = torch.randn(4, 2, 3)
        assert warps.affine_part(theta) is theta  # a theta is its own affine part


class TestErrors:
    @pytest.mark.parametrize(
        "call, error, message",
        [
            (lambda: warps.tps_control_points(1), ValueError, "points_per_side must be an int of at least 2; got 1"),
            (
                lambda: warps.tps_grid(torch.zeros(1, 9, 2), warps.tps_control_points(4), (1, 1, 4, 4)),
                ValueError,
                r"offsets must have shape \(N, 16, 2\) to match control_xy; got \(1, 9, 2\)",
            ),
            (
                lambda: warps.tps_grid(torch.zeros(2, 16, 2), warps.tps_control_points(4), (1, 1, 4, 4)),
                ValueError,
                r"size\[0\] must equal the batch size of offsets \(2\)",
            ),
            (lambda: warps.tps_system(torch.zeros(4, 3)), ValueError, r"control_xy must have shape \(K, 2\)"),
            (lambda: warps.tps_kernel([1.0]), TypeError, "r2 must be a torch.Tensor"),
        ],
    )
    def test_exception(self, call, error, message):
        with pytest.raises(error, match=message):
            call()
