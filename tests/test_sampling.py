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


# --------------------------------------------------------------------------- edge cases of issue 18
# Seven ways the sampler used to part from torch's; each test compares with torch (the oracle) or
# with the error torch raises. The upstream-derived cases are in tests/test_sampling_upstream.py.
MODE_PADDING = list(itertools.product(["bilinear", "nearest"], ["zeros", "border", "reflection"]))


def _sample_and_grads(fn, image, grid, weights=None, **kw):
    """Output and the gradients of (output * weights).sum() for image and grid, with ``fn`` a grid_sample."""
    x, g = image.detach().requires_grad_(), grid.detach().requires_grad_()  # no copy: keeps the memory layout
    out = fn(x, g, **kw)
    w = torch.ones_like(out) if weights is None else weights
    grad_x, grad_g = torch.autograd.grad((out * w).sum(), (x, g))
    return out, grad_x, grad_g


class TestEdgeCases:
    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    @pytest.mark.parametrize("shape, grid_shape", [((0, 3, 4, 5), (0, 2, 3, 2)), ((2, 0, 4, 5), (2, 2, 3, 2))])
    def test_empty_batch_or_channels_give_empty_results(self, shape, grid_shape, mode, padding_mode):
        image, grid = torch.rand(shape, dtype=torch.float64), torch.rand(grid_shape, dtype=torch.float64) - 0.5
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
        expected = _sample_and_grads(F.grid_sample, image, grid, **kw)
        got = _sample_and_grads(sampling.grid_sample, image, grid, **kw)
        for a, b in zip(got, expected):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b)

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    @pytest.mark.parametrize("layout", ["transposed", "flow field", "every other"])
    def test_any_grid_layout(self, layout, mode, padding_mode):
        g = torch.Generator().manual_seed(11)
        image = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=g)
        if layout == "transposed":  # a (N, W, H, 2) tensor seen as (N, H, W, 2)
            grid = (1.3 * torch.randn(2, 7, 4, 2, dtype=torch.float64, generator=g)).transpose(1, 2)
        elif layout == "flow field":  # (N, 2, H, W), as a network outputs it, permuted to (N, H, W, 2)
            grid = (1.3 * torch.randn(2, 2, 4, 7, dtype=torch.float64, generator=g)).permute(0, 2, 3, 1)
        else:  # a strided slice
            grid = (1.3 * torch.randn(2, 8, 14, 2, dtype=torch.float64, generator=g))[:, ::2, ::2]
        assert not grid.is_contiguous()
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
        weights = torch.randn(2, 3, 4, 7, dtype=torch.float64, generator=g)
        expected = _sample_and_grads(F.grid_sample, image, grid, weights, **kw)
        got = _sample_and_grads(sampling.grid_sample, image, grid, weights, **kw)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_nearest_with_nan_and_inf_grid(self, padding_mode, align_corners):
        nan, inf = float("nan"), float("inf")
        image = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3)
        points = [(nan, 0.0), (0.0, nan), (nan, nan), (inf, 0.0), (-inf, 0.5), (0.0, inf), (0.2, -inf), (1e20, 0.0)]
        grid = torch.tensor(points, dtype=torch.float64).reshape(1, 1, -1, 2)
        kw = dict(mode="nearest", padding_mode=padding_mode, align_corners=align_corners)
        expected = _sample_and_grads(F.grid_sample, image, grid, **kw)
        got = _sample_and_grads(sampling.grid_sample, image, grid, **kw)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=0, rtol=0)

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    @pytest.mark.parametrize("shape", [(1, 1, 0, 4), (2, 3, 5, 0), (1, 2, 0, 0)])
    def test_zero_size_image_is_rejected_like_torch(self, shape, mode, padding_mode):
        image, grid = torch.zeros(shape), torch.zeros(shape[0], 2, 2, 2)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
        with pytest.raises(RuntimeError, match="non-empty spatial dimensions"):
            F.grid_sample(image, grid, **kw)
        with pytest.raises(
            ValueError,
            match=r"input must have non-empty spatial dimensions.*got shape \(" + r", ".join(map(str, shape)),
        ):
            sampling.grid_sample(image, grid, **kw)

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    def test_double_backward_matches_torch(self, mode, padding_mode):
        # A penalty on the gradient (as in a gradient-penalty loss) must reach image and grid.
        g = torch.Generator().manual_seed(12)
        image = torch.randn(2, 2, 4, 5, dtype=torch.float64, generator=g)
        grid = 2.4 * torch.rand(2, 3, 3, 2, dtype=torch.float64, generator=g) - 1.2
        weights = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=g)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
        results = []
        for fn in (F.grid_sample, sampling.grid_sample):
            x, gr = image.clone().requires_grad_(), grid.clone().requires_grad_()
            grad_x, grad_g = torch.autograd.grad((fn(x, gr, **kw) * weights).sum(), (x, gr), create_graph=True)
            penalty = (
                (grad_x**2).sum() + (grad_g**2).sum() + (grad_x.sum((2, 3)) * grad_g.sum((1, 2, 3))[:, None]).sum()
            )
            if not penalty.requires_grad:  # nearest: the gradient does not depend on image or grid
                results.append((torch.zeros_like(x), torch.zeros_like(gr)))
                continue
            results.append(torch.autograd.grad(penalty, (x, gr), allow_unused=True, materialize_grads=True))
        for a, b in zip(results[1], results[0]):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    def test_gradgradcheck(self, mode, padding_mode):
        g = torch.Generator().manual_seed(13)
        image = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
        grid = (2.2 * torch.rand(1, 2, 3, 2, dtype=torch.float64, generator=g) - 1.1).requires_grad_()
        fn = lambda x, gr: sampling.grid_sample(x, gr, mode=mode, padding_mode=padding_mode)  # noqa: E731
        assert torch.autograd.gradgradcheck(fn, (image, grid))

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    def test_batched_gradients(self, mode, padding_mode):
        g = torch.Generator().manual_seed(14)
        image = torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
        grid = (2.2 * torch.rand(2, 3, 2, 2, dtype=torch.float64, generator=g) - 1.1).requires_grad_()
        fn = lambda x, gr: sampling.grid_sample(x, gr, mode=mode, padding_mode=padding_mode)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (image, grid), check_batched_grad=True)

    @pytest.mark.parametrize("mode, padding_mode", MODE_PADDING)
    def test_vmap_over_per_sample_gradients(self, mode, padding_mode):
        # torch.func.vmap(torch.func.grad(...)): per-sample gradients of image and grid
        g = torch.Generator().manual_seed(15)
        images = torch.randn(3, 2, 4, 5, dtype=torch.float64, generator=g)
        grids = 2.2 * torch.rand(3, 3, 2, 2, dtype=torch.float64, generator=g) - 1.1
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)

        def per_sample(fn):
            loss = lambda x, gr: (fn(x[None], gr[None], **kw) ** 2).sum()  # noqa: E731
            return torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(images, grids)

        for a, b in zip(per_sample(sampling.grid_sample), per_sample(F.grid_sample)):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    def test_nearest_grid_gradient_is_zero_like_torch(self, padding_mode):
        image = torch.rand(1, 1, 4, 4)
        grid = (torch.rand(1, 3, 3, 2) * 2.4 - 1.2).requires_grad_()
        # only the grid requires grad: backward() must work, and give zeros
        sampling.grid_sample(image, grid, mode="nearest", padding_mode=padding_mode).sum().backward()
        expected = grid.detach().clone().requires_grad_()
        F.grid_sample(image, expected, mode="nearest", padding_mode=padding_mode, align_corners=False).sum().backward()
        torch.testing.assert_close(grid.grad, expected.grad, atol=0, rtol=0)
        assert torch.count_nonzero(grid.grad) == 0

    @pytest.mark.parametrize("mode", ["bilinear", "nearest"])
    @pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1)])
    def test_reflection_on_a_one_pixel_axis_keeps_the_grid_in_the_graph(self, size, mode):
        # align_corners=True and one pixel along an axis: every point reflects to 0 there; the grid
        # still gets its (zero) gradient when only the grid requires grad, as with torch
        image = torch.rand(2, 3, *size, dtype=torch.float64)
        grid = torch.rand(2, 3, 4, 2, dtype=torch.float64) * 3 - 1.5
        kw = dict(mode=mode, padding_mode="reflection", align_corners=True)
        g1, g2 = grid.clone().requires_grad_(), grid.clone().requires_grad_()
        (sampling.grid_sample(image, g1, **kw) ** 2).sum().backward()
        (F.grid_sample(image, g2, **kw) ** 2).sum().backward()
        torch.testing.assert_close(g1.grad, g2.grad, atol=1e-10, rtol=0)
