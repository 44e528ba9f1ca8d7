"""stnlib.sampling against torch's own ops (the oracle): values, gradients, errors."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from stnlib import geometry, sampling
from stnlib.checks import reference_ops_blocked

ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def random_theta(batch, dtype, generator):
    """Random thetas around the identity, with rotation, scale, shear and translation."""
    return torch.eye(2, 3, dtype=dtype) + 0.6 * torch.randn(batch, 2, 3, dtype=dtype, generator=generator)


class TestAffineGrid:
    @pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid behavior has changed")
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("size", [(1, 1, 5, 7), (3, 2, 28, 28), (2, 1, 1, 4), (2, 3, 6, 1)])
    def test_matches_torch(self, size, dtype, align_corners):
        g = torch.Generator().manual_seed(1)
        theta = random_theta(size[0], dtype, g)
        expected = F.affine_grid(theta, size, align_corners=align_corners)
        got = sampling.affine_grid(theta, size, align_corners=align_corners)
        assert got.shape == expected.shape and got.dtype == dtype
        torch.testing.assert_close(got, expected, atol=ATOL[dtype], rtol=0)

    def test_identity_hits_pixel_centres(self):
        # Hand-checkable: W=4, align_corners=False -> centres at (2*col + 1)/4 - 1.
        grid = sampling.affine_grid(torch.eye(2, 3).unsqueeze(0), (1, 1, 2, 4), align_corners=False)
        torch.testing.assert_close(grid[0, 0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
        torch.testing.assert_close(grid[0, :, 0, 1], torch.tensor([-0.5, 0.5]))

    def test_gradient_reaches_theta(self):
        theta = random_theta(2, torch.float64, torch.Generator().manual_seed(2)).requires_grad_()
        assert torch.autograd.gradcheck(lambda t: sampling.affine_grid(t, (2, 1, 3, 4)), (theta,))

    @pytest.mark.parametrize(
        "theta, size, message",
        [
            (torch.zeros(4, 3, 3), (4, 1, 5, 5), r"theta must have shape \(N, 2, 3\); got \(4, 3, 3\)"),
            (torch.zeros(2, 3), (1, 1, 5, 5), r"theta must have shape \(N, 2, 3\); got \(2, 3\)"),
            (torch.zeros(2, 2, 3), (3, 1, 5, 5), r"size\[0\] must equal the batch size of theta \(2\)"),
            (torch.zeros(1, 2, 3), (1, 5, 5), r"size must be \(N, C, H, W\)"),
            (torch.zeros(1, 2, 3, dtype=torch.long), (1, 1, 5, 5), r"theta must have a floating-point dtype"),
        ],
    )
    def test_exception(self, theta, size, message):
        with pytest.raises(ValueError, match=message):
            sampling.affine_grid(theta, size)

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="theta must be a torch.Tensor; got list"):
            sampling.affine_grid([[1, 0, 0], [0, 1, 0]], (1, 1, 2, 2))


CASES = list(
    itertools.product(
        ["bilinear", "nearest"], ["zeros", "border", "reflection"], [False, True], [torch.float32, torch.float64]
    )
)


def random_case(dtype, seed, batch=2, channels=3, size_in=(5, 7), size_out=(4, 6), spread=2.5):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, channels, *size_in, dtype=dtype, generator=g)
    grid = spread * torch.randn(batch, *size_out, 2, dtype=dtype, generator=g)  # reaches far outside [-1, 1]
    return image, grid


class TestGridSample:
    @pytest.mark.parametrize("mode, padding_mode, align_corners, dtype", CASES)
    def test_matches_torch(self, mode, padding_mode, align_corners, dtype):
        image, grid = random_case(dtype, seed=3)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        torch.testing.assert_close(
            sampling.grid_sample(image, grid, **kw), F.grid_sample(image, grid, **kw), atol=ATOL[dtype], rtol=0
        )

    @pytest.mark.parametrize("size_in", [(28, 28), (42, 30), (1, 5), (6, 1)])
    def test_matches_torch_with_affine_grids(self, size_in):
        g = torch.Generator().manual_seed(4)
        image = torch.rand(3, 1, *size_in, generator=g)
        theta = random_theta(3, torch.float32, g)
        for align_corners in (False, True):
            grid = F.affine_grid(theta, (3, 1, 9, 11), align_corners=align_corners)
            for padding_mode in ("zeros", "border", "reflection"):
                kw = dict(padding_mode=padding_mode, align_corners=align_corners)
                torch.testing.assert_close(
                    sampling.grid_sample(image, grid, **kw), F.grid_sample(image, grid, **kw), atol=1e-5, rtol=0
                )

    @pytest.mark.parametrize(
        "padding_mode, align_corners, dtype",
        list(itertools.product(["zeros", "border", "reflection"], [False, True], [torch.float32, torch.float64])),
    )
    def test_bilinear_gradients_match_torch(self, padding_mode, align_corners, dtype):
        image, grid = random_case(dtype, seed=5)
        kw = dict(mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
        outs = []
        for fn in (F.grid_sample, sampling.grid_sample):
            x, g = image.clone().requires_grad_(), grid.clone().requires_grad_()
            out = fn(x, g, **kw)
            weights = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(6))
            (out * weights).sum().backward()
            outs.append((x.grad, g.grad))
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(outs[1][0], outs[0][0], atol=tol, rtol=0)
        torch.testing.assert_close(outs[1][1], outs[0][1], atol=tol * 10, rtol=0)

    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_gradients_on_exact_pixel_positions_match_torch(self, padding_mode, align_corners):
        # The identity grid lands exactly on pixel centres (and, with align_corners=True, on
        # the border): the kinks where torch's choice of sub-gradient matters.
        image = torch.randn(1, 1, 4, 5, dtype=torch.float64)
        grid = F.affine_grid(torch.eye(2, 3, dtype=torch.float64)[None], (1, 1, 4, 5), align_corners=align_corners)
        kw = dict(padding_mode=padding_mode, align_corners=align_corners)
        grads = []
        for fn in (F.grid_sample, sampling.grid_sample):
            g = grid.clone().requires_grad_()
            fn(image, g, **kw).sum().backward()
            grads.append(g.grad)
        torch.testing.assert_close(grads[1], grads[0], atol=1e-12, rtol=0)

    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    def test_gradcheck(self, padding_mode):
        g = torch.Generator().manual_seed(7)
        image = torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
        grid = (1.3 * torch.rand(2, 3, 2, 2, dtype=torch.float64, generator=g) - 0.65).requires_grad_()
        assert torch.autograd.gradcheck(
            lambda x, gr: sampling.grid_sample(x, gr, padding_mode=padding_mode, align_corners=False), (image, grid)
        )

    def test_bilinear_function_gradcheck_in_pixels(self):
        g = torch.Generator().manual_seed(8)
        image = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
        x = (4.6 * torch.rand(1, 2, 3, dtype=torch.float64, generator=g) - 0.8).requires_grad_()
        y = (3.6 * torch.rand(1, 2, 3, dtype=torch.float64, generator=g) - 0.8).requires_grad_()
        assert torch.autograd.gradcheck(sampling.BilinearSampleFunction.apply, (image, x, y))

    def test_identity_returns_the_image(self):
        image = torch.arange(12.0).reshape(1, 1, 3, 4)
        for align_corners in (False, True):
            grid = sampling.affine_grid(torch.eye(2, 3)[None], (1, 1, 3, 4), align_corners=align_corners)
            torch.testing.assert_close(sampling.grid_sample(image, grid, align_corners=align_corners), image)

    def test_one_pixel_shift(self):
        # theta's tx = 2/W moves the read position one pixel right, so the picture moves left.
        image = torch.arange(12.0).reshape(1, 1, 3, 4)
        theta = torch.tensor([[[1.0, 0.0, 2 / 4], [0.0, 1.0, 0.0]]])
        out = sampling.grid_sample(image, sampling.affine_grid(theta, (1, 1, 3, 4)))
        expected = torch.cat([image[..., 1:], torch.zeros(1, 1, 3, 1)], dim=-1)
        torch.testing.assert_close(out, expected)

    def test_far_outside_reads_zero_or_border(self):
        image = torch.rand(1, 1, 3, 3) + 1
        grid = torch.full((1, 1, 1, 2), 50.0)
        assert sampling.grid_sample(image, grid).item() == 0
        assert sampling.grid_sample(image, grid, padding_mode="border").item() == image[0, 0, -1, -1].item()

    @pytest.mark.parametrize(
        "kwargs, error, message",
        [
            (dict(input=torch.zeros(3, 5, 5)), ValueError, r"input must have shape \(N, C, H, W\); got \(3, 5, 5\)"),
            (
                dict(grid=torch.zeros(1, 4, 4, 3)),
                ValueError,
                r"grid must have shape \(N, H_out, W_out, 2\); got \(1, 4, 4, 3\)",
            ),
            (dict(grid=torch.zeros(2, 4, 4, 2)), ValueError, r"grid must have the same batch size as input \(1\)"),
            (
                dict(grid=torch.zeros(1, 4, 4, 2, dtype=torch.float64)),
                ValueError,
                r"grid must have the same dtype as input",
            ),
            (dict(mode="bicubic"), ValueError, r"mode must be one of 'bilinear', 'nearest'; got 'bicubic'"),
            (dict(padding_mode="constant"), ValueError, r"padding_mode must be one of 'zeros', 'border', 'reflection'"),
            (
                dict(input=torch.zeros(1, 1, 5, 5, dtype=torch.long)),
                ValueError,
                r"input must have a floating-point dtype",
            ),
            (dict(grid="grid"), TypeError, r"grid must be a torch.Tensor; got str"),
        ],
    )
    def test_exception(self, kwargs, error, message):
        args = dict(input=torch.zeros(1, 1, 5, 5), grid=torch.zeros(1, 4, 4, 2))
        args.update(kwargs)
        with pytest.raises(error, match=message):
            sampling.grid_sample(**args)


class TestWarp:
    """sampling.warp: torch's affine_grid + grid_sample (the oracle) in one call, for (H, W) images and batches."""

    @pytest.mark.parametrize("sampler", ["torch", "stnlib"])
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_batch_matches_torch(self, sampler, align_corners):
        g = torch.Generator().manual_seed(3)
        image, theta = torch.rand(2, 3, 5, 7, generator=g), random_theta(2, torch.float32, g)
        grid = F.affine_grid(theta, (2, 3, 4, 6), align_corners=align_corners)
        expected = F.grid_sample(image, grid, padding_mode="border", align_corners=align_corners)
        got = sampling.warp(image, theta, (4, 6), align_corners=align_corners, padding_mode="border", sampler=sampler)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    def test_single_image_and_single_theta(self):
        image = torch.rand(5, 7)
        theta = geometry.compose_theta(rotation_deg=30.0, tx=0.2)
        grid = F.affine_grid(theta[None], (1, 1, 5, 7), align_corners=False)
        expected = F.grid_sample(image[None, None], grid, align_corners=False)
        out = sampling.warp(image, theta)
        assert out.shape == (5, 7)
        torch.testing.assert_close(out, expected[0, 0])
        torch.testing.assert_close(sampling.warp(image, theta[None]), out)  # (1, 2, 3) serves too

    def test_hand_built_sampler_is_differentiable_in_theta(self):
        theta = geometry.compose_theta(scale_x=0.9, scale_y=0.9, dtype=torch.float64)[None].requires_grad_(True)
        image = torch.rand(1, 1, 6, 6, dtype=torch.float64)
        sampling.warp(image, theta, sampler="stnlib").sum().backward()
        assert theta.grad is not None and theta.grad.abs().sum() > 0

    @pytest.mark.parametrize(
        "image, theta, message",
        [
            (
                torch.zeros(1, 5, 5),
                torch.eye(2, 3),
                r"image must have shape \(H, W\) or \(N, C, H, W\); got \(1, 5, 5\)",
            ),
            (torch.zeros(5, 5), torch.eye(3), r"theta must have shape \(2, 3\)"),
            (
                torch.zeros(2, 1, 5, 5),
                torch.eye(2, 3)[None].repeat(3, 1, 1),
                r"theta must have one matrix per image \(2\)",
            ),
        ],
    )
    def test_exception(self, image, theta, message):
        with pytest.raises(ValueError, match=message):
            sampling.warp(image, theta)


class TestBlocking:
    def test_reference_ops_blocked_inside_and_restored_after(self):
        from torch.nn.functional import grid_sample as aliased  # an alias taken before blocking

        image, grid = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 2)
        with reference_ops_blocked():
            for call in (
                lambda: F.grid_sample(image, grid, align_corners=False),
                lambda: aliased(image, grid, align_corners=False),
                lambda: F.affine_grid(torch.eye(2, 3)[None], (1, 1, 2, 2), align_corners=False),
                lambda: sampling.grid_sample(image, grid),
                lambda: sampling.affine_grid(torch.eye(2, 3)[None], (1, 1, 2, 2)),
                lambda: geometry.rotation_matrix(30.0),
            ):
                with pytest.raises(RuntimeError, match="not available"):
                    call()
        # and everything works again afterwards
        assert sampling.grid_sample(image, grid).shape == (1, 1, 1, 1)
        assert F.grid_sample(image, grid, align_corners=False).shape == (1, 1, 1, 1)
        assert geometry.rotation_matrix(30.0).shape == (3, 3)
