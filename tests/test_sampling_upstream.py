"""stnlib.sampling on the test cases of PyTorch and kornia (2-D only), against torch's own ops.

Each test is our adaptation of an upstream test, named in its docstring:

- PyTorch ``test/test_nn.py`` (``TestNN``, ``TestNNDeviceType``): the tests of ``grid_sample`` and
  ``affine_grid``;
- PyTorch ``torch/testing/_internal/common_methods_invocations.py``: the OpInfo samples of
  ``nn.functional.grid_sample`` and ``grid_sampler_2d`` and what the OpInfo suites do with them
  (dtypes, gradcheck, gradgradcheck, batched gradients, non-contiguous samples, vmap);
- kornia ``tests/geometry/test_grid.py`` and ``tests/geometry/transform/test_imgwarp.py``.

The oracle is always torch: ``F.grid_sample`` / ``F.affine_grid`` on the same inputs (values and
gradients), or the error torch raises. Where torch's behaviour differs between its kernels
(non-finite points with bilinear sampling and zero padding), the test says so and checks what the
upstream test asserts. Cases upstream draws at random are drawn here from seeded generators
within the same ranges.
"""

import itertools
import math
import random
import zlib

import pytest
import torch
import torch.nn.functional as F

from stnlib import geometry, sampling

MODES = ["bilinear", "nearest"]
PADDINGS = ["zeros", "border", "reflection"]
MODE_PAD_ALIGN = list(itertools.product(MODES, PADDINGS, [False, True]))
MPA_IDS = [f"{m}-{p}-{'ac' if a else 'noac'}" for m, p, a in MODE_PAD_ALIGN]
TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-9),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
}


def _seed(*parts) -> int:
    """A seed that depends on ``parts`` only (Python's hash of a string changes from run to run)."""
    return zlib.crc32(repr(parts).encode())


def _run(fn, image, grid, weights=None, input_grad=True, **kw):
    """Output of ``fn(image, grid, **kw)`` and the gradients of (output * weights).sum() for image and grid.

    The tensors are passed as they are (detached, not copied), so their memory layout is kept.
    """
    x = image.detach().requires_grad_(input_grad)
    g = grid.detach().requires_grad_()
    out = fn(x, g, **kw)
    w = torch.ones_like(out) if weights is None else weights
    (out * w).sum().backward()
    return out.detach(), (x.grad if input_grad else None), g.grad


def assert_matches_torch(image, grid, weights=None, input_grad=True, tol=None, **kw):
    """stnlib.sampling.grid_sample against F.grid_sample: values, input gradient and grid gradient."""
    tol = tol or TOL.get(image.dtype, {})
    expected = _run(F.grid_sample, image, grid, weights, input_grad, **kw)
    got = _run(sampling.grid_sample, image, grid, weights, input_grad, **kw)
    for name, a, b in zip(("output", "input gradient", "grid gradient"), got, expected):
        if b is None:
            assert a is None, name
            continue
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")


# =========================================================================== PyTorch test/test_nn.py
class TestGridSampleErrorChecking:
    """Adapted from pytorch test/test_nn.py::TestNN::test_grid_sample_error_checking (the 2-D cases).

    torch raises; stnlib raises its own ValueError that names the argument.
    """

    CASES = {
        "mode garbage": (dict(mode="garbage"), r"mode must be one of 'bilinear', 'nearest'; got 'garbage'"),
        "padding_mode garbage": (dict(padding_mode="garbage"), r"padding_mode must be one of .*got 'garbage'"),
        "3-D input": (dict(input=torch.empty(1, 2, 2)), r"input must have shape \(N, C, H, W\); got \(1, 2, 2\)"),
        "5-D grid": (dict(grid=torch.empty(1, 1, 1, 1, 3)), r"grid must have shape \(N, H_out, W_out, 2\)"),
        "batch mismatch": (dict(grid=torch.empty(2, 1, 1, 2)), r"grid must have the same batch size as input \(1\)"),
        "grid last dim 3": (dict(grid=torch.empty(1, 1, 1, 3)), r"grid must have shape \(N, H_out, W_out, 2\)"),
        "empty spatial": (
            dict(input=torch.empty(1, 1, 0, 2)),
            r"input must have non-empty spatial dimensions .*got shape \(1, 1, 0, 2\)",
        ),
        "bicubic 5-D": (
            dict(input=torch.empty(1, 1, 2, 2, 2), grid=torch.empty(1, 1, 1, 1, 3), mode="bicubic"),
            r"input must have shape \(N, C, H, W\)",
        ),
    }

    def test_valid_call_matches_torch(self):
        image, grid = torch.rand(1, 1, 2, 2), torch.rand(1, 1, 1, 2) * 2 - 1
        torch.testing.assert_close(sampling.grid_sample(image, grid), F.grid_sample(image, grid, align_corners=False))

    @pytest.mark.parametrize("case", list(CASES))
    def test_bad_argument(self, case):
        kwargs, message = self.CASES[case]
        args = dict(input=torch.empty(1, 1, 2, 2), grid=torch.empty(1, 1, 1, 2))
        args.update(kwargs)
        with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
            F.grid_sample(**args, align_corners=False)
        with pytest.raises(ValueError, match=message):
            sampling.grid_sample(**args, align_corners=False)


class TestAffineGridErrorChecking:
    """Adapted from pytorch test/test_nn.py::TestNN::test_affine_grid_error_checking (the 2-D cases)."""

    @pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid behavior has changed")
    @pytest.mark.filterwarnings("ignore:.*See the documentation of affine_grid for details")
    @pytest.mark.parametrize(
        "size, align_corners", [((1, 1, 2, 2), False), ((1, 1, 2, 1), False), ((1, 1, 2, 1), True)]
    )
    def test_valid_call_matches_torch(self, size, align_corners):
        # upstream: no error, and a warning for the empty span of W = 1 with align_corners=True
        theta = torch.randn(1, 2, 3, dtype=torch.double, generator=torch.Generator().manual_seed(0))
        expected = F.affine_grid(theta, size, align_corners=align_corners)
        torch.testing.assert_close(sampling.affine_grid(theta, size, align_corners=align_corners), expected)

    CASES = {
        "integer theta": (torch.empty(1, 2, 3, dtype=torch.int32), (1, 1, 2, 2), r"theta must have a floating-point"),
        "theta[0]": (torch.empty(2, 3, dtype=torch.double), (1, 1, 2, 2), r"theta must have shape \(N, 2, 3\)"),
        "theta.unsqueeze(0)": (torch.empty(1, 1, 2, 3, dtype=torch.double), (1, 1, 2, 2), r"theta must have shape"),
        "theta.repeat(1, 2, 1)": (torch.empty(1, 4, 3, dtype=torch.double), (1, 1, 2, 2), r"theta must have shape"),
        "theta.repeat(1, 1, 2)": (torch.empty(1, 2, 6, dtype=torch.double), (1, 1, 2, 2), r"theta must have shape"),
        "3-D size": (torch.empty(1, 2, 3, dtype=torch.double), (1, 2, 2), r"size must be \(N, C, H, W\)"),
        "6-D size": (torch.empty(1, 2, 3, dtype=torch.double), (1, 1, 2, 2, 2, 2), r"size must be \(N, C, H, W\)"),
    }

    @pytest.mark.parametrize("case", list(CASES))
    def test_bad_argument(self, case):
        theta, size, message = self.CASES[case]
        with pytest.raises((ValueError, NotImplementedError, RuntimeError)):
            F.affine_grid(theta, torch.Size(size), align_corners=False)
        with pytest.raises(ValueError, match=message):
            sampling.affine_grid(theta, size, align_corners=False)


class TestGridSample:
    """Adapted from pytorch test/test_nn.py::TestNN::test_grid_sample (float64, as upstream)."""

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_known_input(self, mode, padding_mode, align_corners):
        # upstream: "test known input on CPU" (its ground truth is torch's output; we compare with torch)
        image = torch.arange(1.0, 11, dtype=torch.double).view(1, 1, 2, 5)
        grid = torch.tensor(
            [
                [[-0.9, -4.1], [0, 0.2000], [1, -1], [-0.333, 1e-6], [0.5, 1.0]],
                [[-1.0, -0.5], [0, 0.3333], [1, -1], [-0.200, 1e-6], [1.5, 0.5]],
            ],
            dtype=torch.double,
        ).view(1, 2, 5, 2)
        assert_matches_torch(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)

    @pytest.mark.parametrize("input_requires_grad", [False, True])
    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_gradient_edge_cases(self, mode, padding_mode, align_corners, input_requires_grad):
        # upstream: "explicit check for gradient edge cases": points on the border and corners of a
        # ramp image that is an expanded (stride-0) tensor
        image = torch.arange(0.0, 5, dtype=torch.double).expand((1, 1, 5, 5))
        grid = torch.tensor(
            [
                [[1.0, 1.0], [1.0, -1.0], [0.8, 0.8], [0.8, -0.8]],
                [[-1.0, -1.0], [-1.0, 1.0], [-0.8, -0.8], [-0.8, 0.8]],
            ],
            dtype=torch.double,
        ).view(1, 2, 4, 2)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        assert_matches_torch(image, grid, input_grad=input_requires_grad, tol=dict(atol=1e-12, rtol=0), **kw)

    @pytest.mark.parametrize("input_requires_grad", [False, True])
    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_gradcheck(self, mode, padding_mode, align_corners, input_requires_grad):
        # upstream: "do gradcheck" with a randn grid, N in [2, 8], C in [2, 6], H, W in [2, 8]; we draw
        # from the low end of those ranges, which keeps the numerical Jacobians quick
        rng = random.Random(f"gradcheck-{mode}-{padding_mode}-{align_corners}")
        n, c, h, w = rng.randint(2, 3), rng.randint(2, 3), rng.randint(2, 4), rng.randint(2, 4)
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        image = torch.randn(n, c, h, w, dtype=torch.double, generator=g).requires_grad_(input_requires_grad)
        grid = torch.randn(n, h, w, 2, dtype=torch.double, generator=g, requires_grad=True)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        assert torch.autograd.gradcheck(lambda inp, grd: sampling.grid_sample(inp, grd, **kw), (image, grid))

    # upstream test_shape(N, C, IH, IW, H, W): same size, larger and smaller output, a 1x1 input,
    # an empty grid, no channels, an empty batch (sizes drawn once from upstream's ranges)
    SHAPES = {
        "same size": (3, 2, 4, 5, 4, 5),
        "larger output": (2, 3, 3, 4, 7, 9),
        "smaller output": (4, 2, 6, 7, 3, 5),
        "1x1 input": (2, 3, 1, 1, 3, 4),
        "empty grid": (2, 2, 4, 5, 0, 4),
        "empty channel": (3, 0, 4, 3, 4, 5),
        "empty batch": (0, 3, 4, 5, 3, 6),
    }
    # grid_dim_contig_order: grid.permute(order) is contiguous
    GRID_ORDERS = [(0, 1, 2, 3), (0, 3, 1, 2), (3, 0, 1, 2), (0, 2, 1, 3)]

    @pytest.mark.parametrize("order", GRID_ORDERS, ids=lambda o: "".join(map(str, o)))
    @pytest.mark.parametrize("shape", list(SHAPES))
    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_shape(self, mode, padding_mode, align_corners, shape, order):
        # upstream: output shape, and values and gradients against the reference kernel, for an input
        # given as a transposed (C, N, H, W) tensor and grids in four memory layouts
        n, c, ih, iw, h, w = self.SHAPES[shape]
        g = torch.Generator().manual_seed(_seed(shape, order))
        image = torch.randn(c, n, ih, iw, dtype=torch.double, generator=g).transpose(0, 1)
        grid_shape = (n, h, w, 2)
        inverse = [order.index(d) for d in range(4)]
        grid = torch.randn([grid_shape[d] for d in order], dtype=torch.double, generator=g).permute(inverse)
        assert grid.shape == grid_shape and grid.permute(order).is_contiguous()
        weights = torch.randn(n, c, h, w, dtype=torch.double, generator=g)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        assert sampling.grid_sample(image, grid, **kw).shape == (n, c, h, w)
        for input_requires_grad in (False, True):
            assert_matches_torch(image, grid, weights, input_grad=input_requires_grad, **kw)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_zero_stride_input(self, mode, padding_mode, align_corners):
        # upstream: "check that zero-dimensional input strides don't error out" (an expanded input)
        g = torch.Generator().manual_seed(5)
        image = torch.randn(2, 3, 1, 5, dtype=torch.double, generator=g).expand(2, 3, 4, 5)
        grid = torch.randn(2, 3, 6, 2, dtype=torch.double, generator=g)
        assert_matches_torch(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


class TestNearestRoundingConsistency:
    """Adapted from pytorch test/test_nn.py::TestNN::test_grid_sample_nearest_neighbor_rounding_mode_consistency.

    Points at x.0 and x.5 pixel positions (where rounding is decided), along x and along y: the
    same answers as torch, bit for bit, and the same along both axes.
    """

    @pytest.mark.parametrize("padding_mode", PADDINGS)
    @pytest.mark.parametrize("align_corners", [True, False])
    def test_rounding(self, padding_mode, align_corners):
        size, other, step = 10, 9, 0.1
        pixels = torch.arange(0, size - 1 + step, step, dtype=torch.float32)
        if align_corners:
            normalised = 2 * pixels / (size - 1) - 1
        else:
            normalised = (pixels * 2 + 1) / size - 1
        fixed = torch.full_like(normalised, 0.5)
        data = torch.rand(size, generator=torch.Generator().manual_seed(6))
        image_x = data.reshape(1, size).repeat(1, 1, other, 1)  # (1, 1, 9, 10): varies along x
        grid_x = torch.stack([normalised, fixed], dim=1)[None, None]  # (1, 1, P, 2)
        image_y, grid_y = image_x.transpose(3, 2), grid_x.flip(-1)
        kw = dict(mode="nearest", padding_mode=padding_mode, align_corners=align_corners)
        along_x = sampling.grid_sample(image_x, grid_x, **kw)
        along_y = sampling.grid_sample(image_y, grid_y, **kw)
        torch.testing.assert_close(along_x, F.grid_sample(image_x, grid_x, **kw), atol=0, rtol=0)
        torch.testing.assert_close(along_y, F.grid_sample(image_y, grid_y, **kw), atol=0, rtol=0)
        torch.testing.assert_close(along_x, along_y, atol=0, rtol=0)


class TestGridSampleNanInf:
    """Adapted from pytorch test/test_nn.py::TestNNDeviceType::test_grid_sample_nan_inf."""

    @pytest.mark.parametrize("dtype", [torch.float, torch.double])
    @pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
    def test_nearest(self, padding_mode, dtype):
        image = torch.zeros(1, 1, 3, 3, dtype=dtype)
        grid = torch.tensor([[[[math.nan, 0], [0, math.inf]]]], dtype=dtype)
        kw = dict(mode="nearest", padding_mode=padding_mode, align_corners=False)
        out = sampling.grid_sample(image, grid, **kw)
        torch.testing.assert_close(out, torch.zeros(1, 1, 1, 2, dtype=dtype), atol=0, rtol=0)  # upstream's assertion
        torch.testing.assert_close(out, F.grid_sample(image, grid, **kw), atol=0, rtol=0)


class TestGridSampleLarge:
    """Adapted from pytorch test/test_nn.py::TestNNDeviceType::test_grid_sample_large (CUDA-only upstream)."""

    def test_huge_coordinates_issue_35202(self):
        image = torch.rand(1, 1, 480, 640, generator=torch.Generator().manual_seed(7))
        grid = torch.tensor([[-10059144, 67680944], [67680944, 67680944]], dtype=torch.float)[None, None]
        out = sampling.grid_sample(image, grid)
        torch.testing.assert_close(out, torch.zeros(1, 1, 1, 2), atol=0, rtol=0)
        assert_matches_torch(image, grid, tol=dict(atol=0, rtol=0), align_corners=False)  # gradients too: all zero

    @pytest.mark.parametrize("dtype", [torch.half, torch.float, torch.double])
    def test_inf_point_issue_24823(self, dtype):
        # upstream checks this in 3-D: an identity grid with one point at x = inf reads 0 there (zero
        # padding), and that input pixel gets no gradient. Here in 2-D. torch's CPU kernel gives NaN at
        # that point (and in float16 NaN gradients around it); wherever it is finite, it agrees with ours.
        image = torch.arange(9.0, 0, -1, dtype=dtype).view(1, 1, 3, 3).requires_grad_()
        grid = F.affine_grid(torch.eye(2, 3, dtype=torch.double)[None], (1, 1, 3, 3), align_corners=False).to(dtype)
        grid[:, 1, 1, 0] = math.inf
        out = sampling.grid_sample(image, grid, padding_mode="zeros")
        expected = image.detach().clone()
        expected[0, 0, 1, 1] = 0
        torch.testing.assert_close(out, expected, atol=5e-3 if dtype == torch.half else 1e-6, rtol=0)
        out.backward(torch.ones_like(out))
        expected_grad = torch.ones_like(image)
        expected_grad[0, 0, 1, 1] = 0
        torch.testing.assert_close(image.grad, expected_grad, atol=5e-3, rtol=0)
        torch_image = image.detach().clone().requires_grad_()
        torch_out = F.grid_sample(torch_image, grid, padding_mode="zeros", align_corners=False)
        torch_out.backward(torch.ones_like(torch_out))
        tol = dict(atol=5e-3, rtol=0) if dtype == torch.half else {}
        for ours, theirs in ((out, torch_out), (image.grad, torch_image.grad)):
            finite = torch.isfinite(theirs)
            torch.testing.assert_close(ours[finite], theirs[finite], **tol)

    def test_huge_theta_issue_24823(self):
        theta = torch.tensor([[[-1.0e20, 0.0, 0.0], [0.0, -1.0e20, 0.0]]])
        image = torch.zeros(1, 1, 4, 4)
        grid = sampling.affine_grid(theta, image.size())
        torch.testing.assert_close(grid, F.affine_grid(theta, image.size(), align_corners=False))
        torch.testing.assert_close(sampling.grid_sample(image, grid), torch.zeros(1, 1, 4, 4), atol=0, rtol=0)
        assert_matches_torch(image, grid, tol=dict(atol=0, rtol=0), align_corners=False)


class TestGridSampleLargeStrides:
    """Adapted from pytorch test/test_nn.py::TestNNDeviceType::test_grid_sample_large_index_2d.

    Upstream samples a strided view of a 32769 x 65536 image (64-bit indexing). Kept: a view
    with large strides (every 128th column) against the same image made contiguous, and torch.
    """

    @pytest.mark.parametrize("dtype", [torch.float, torch.double])
    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_strided_view(self, mode, padding_mode, align_corners, dtype):
        g = torch.Generator().manual_seed(8)
        coords = torch.rand(1, 4, 4, 2, dtype=dtype, generator=g)
        big = torch.zeros(1, 1, 33, 4096, dtype=dtype)
        view = big[..., 127::128]
        view[...] = torch.rand(view.shape, dtype=dtype, generator=g)
        small = view.contiguous()
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        a, b = _run(sampling.grid_sample, small, coords, **kw), _run(sampling.grid_sample, view, coords, **kw)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=0, rtol=0)
        assert_matches_torch(view, coords, **kw)


class TestGridSampleReducedPrecision:
    """Adapted from pytorch test/test_nn.py::TestNNDeviceType::test_grid_sample_half_precision and
    ::test_grid_sample_bfloat16_precision (CUDA-only upstream, where they compare with float64).

    On the CPU torch's own half-precision kernel does not meet that bar (the grid itself is
    rounded to half precision), so the oracle here is torch on the same float16/bfloat16 inputs,
    to a few units in the last place.
    """

    @pytest.mark.parametrize("dtype", [torch.half, torch.bfloat16])
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("mode", MODES)
    def test_matches_torch(self, mode, align_corners, dtype):
        g = torch.Generator().manual_seed(9)
        data = torch.randn(32, 64, 16, 16, generator=g).to(dtype)
        grid = (torch.rand(32, 8, 8, 2, generator=g) * 2.0 - 1.0).to(dtype)
        kw = dict(mode=mode, padding_mode="zeros", align_corners=align_corners)
        eps = torch.finfo(dtype).eps
        expected = _run(F.grid_sample, data, grid, **kw)
        got = _run(sampling.grid_sample, data, grid, **kw)
        for a, b in zip(got, expected):
            scale = max(b.abs().max().item(), 1.0)
            torch.testing.assert_close(a.float(), b.float(), atol=8 * eps * scale, rtol=0)


class TestAffineGrid:
    """Adapted from pytorch test/test_nn.py::TestNN::test_affine_grid and
    ::test_affine_grid_backward_cl_cf_consistency (nd=2)."""

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_known_input(self, align_corners):
        theta = torch.arange(1.0, 7, dtype=torch.double).view(1, 2, 3)
        expected = F.affine_grid(theta, torch.Size([1, 1, 2, 2]), align_corners=align_corners)
        torch.testing.assert_close(sampling.affine_grid(theta, (1, 1, 2, 2), align_corners=align_corners), expected)

    @pytest.mark.filterwarnings("ignore:.*See the documentation of affine_grid for details")
    @pytest.mark.parametrize("align_corners", [True, False])
    def test_gradcheck(self, align_corners):
        rng = random.Random(f"affine-{align_corners}")
        size = (rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 8))
        theta = torch.randn(size[0], 2, 3, dtype=torch.double, generator=torch.Generator().manual_seed(10))
        torch.testing.assert_close(
            sampling.affine_grid(theta, size, align_corners=align_corners),
            F.affine_grid(theta, size, align_corners=align_corners),
        )
        theta.requires_grad_()
        assert torch.autograd.gradcheck(lambda t: sampling.affine_grid(t, size, align_corners=align_corners), (theta,))

    def test_channels_last_gradient(self):
        theta = torch.rand(6, 2, 3, requires_grad=True)
        grid = sampling.affine_grid(theta, (6, 3, 4, 5), align_corners=False)
        grad = torch.rand(grid.shape, generator=torch.Generator().manual_seed(11))
        grid.backward(grad.contiguous(memory_format=torch.channels_last), retain_graph=True)
        from_channels_last = theta.grad.clone()
        theta.grad = None
        grid.backward(grad)
        torch.testing.assert_close(from_channels_last, theta.grad)
        reference = theta.detach().clone().requires_grad_()
        F.affine_grid(reference, (6, 3, 4, 5), align_corners=False).backward(grad)
        torch.testing.assert_close(theta.grad, reference.grad)


def _rotation_theta(angle_rad: float) -> torch.Tensor:
    """The theta of pytorch test/test_nn.py's _buildEquivalentAffineTransforms2d: [[c, -s, 0], [s, c, 0]]."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float32)


def _assert_rotation_matches_torch(input_size, output_size, angle_rad, image):
    theta = _rotation_theta(angle_rad)
    expected_grid = F.affine_grid(theta, torch.Size(output_size), align_corners=True)
    grid = sampling.affine_grid(theta, output_size, align_corners=True)
    torch.testing.assert_close(grid, expected_grid, atol=1e-6, rtol=0)
    kw = dict(padding_mode="border", align_corners=True)
    torch.testing.assert_close(sampling.grid_sample(image, grid, **kw), F.grid_sample(image, expected_grid, **kw))


INPUT_SIZES_2D = [[1, 1, 3, 5], [1, 1, 3, 3], [1, 1, 4, 4], [1, 1, 3, 4]]
OUTPUT_SIZES_2D = [[1, 1, 5, 3], [1, 1, 3, 5], [1, 1, 4, 3], [1, 1, 5, 5], [1, 1, 6, 6]]
INPUT_SIZES_2D_SQ = [[1, 1, 2, 2], [1, 1, 3, 3], [1, 1, 4, 4], [1, 1, 6, 6]]
OUTPUT_SIZES_2D_SQ = [[1, 1, 2, 2], [1, 1, 3, 3], [1, 1, 4, 4], [1, 1, 5, 5], [1, 1, 6, 6]]
# upstream's angle_rad_(): 0, 1/2, 1/4 and 1/8 of a turn, and one random angle (drawn once here)
ANGLES = [r * math.pi * 2 for r in [0.0, 0.5, 0.25, 0.125, 0.3141]]


class TestAffine2dRotate:
    """Adapted from pytorch test/test_nn.py::TestNNDeviceType::test_affine_2d_rotate0, ::test_affine_2d_rotate90,
    ::test_affine_2d_rotate45 and ::test_affine_2d_rotateRandom (upstream compares torch with scipy; we compare
    stnlib's grid and sampler with torch's, border padding, align_corners=True as upstream)."""

    def test_rotate0(self):
        image = torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(12))
        _assert_rotation_matches_torch([1, 1, 3, 3], [1, 1, 5, 5], 0.0, image)

    @pytest.mark.parametrize("output_size", OUTPUT_SIZES_2D_SQ, ids=str)
    @pytest.mark.parametrize("input_size", INPUT_SIZES_2D_SQ, ids=str)
    def test_rotate90(self, input_size, output_size):
        image = torch.rand(input_size, generator=torch.Generator().manual_seed(13))
        _assert_rotation_matches_torch(input_size, output_size, 0.25 * math.pi * 2, image)

    def test_rotate45(self):
        image = torch.zeros(1, 1, 3, 3)
        image[0, 0, 0, :] = 0.5
        image[0, 0, 2, 2] = 1.0
        _assert_rotation_matches_torch([1, 1, 3, 3], [1, 1, 3, 3], 0.125 * math.pi * 2, image)

    @pytest.mark.parametrize("output_size", OUTPUT_SIZES_2D, ids=str)
    @pytest.mark.parametrize("input_size", INPUT_SIZES_2D, ids=str)
    @pytest.mark.parametrize("angle_rad", ANGLES, ids=lambda a: f"{a:.3f}rad")
    def test_rotate_random(self, angle_rad, input_size, output_size):
        image = torch.rand(input_size, generator=torch.Generator().manual_seed(14)).mul(1000).round().div(1000)
        image[0, 0, 0, 0], image[0, 0, 0, -1], image[0, 0, -1, 0], image[0, 0, -1, -1] = 2, 4, 6, 8
        _assert_rotation_matches_torch(input_size, output_size, angle_rad, image)


# =========================================================================== PyTorch OpInfo samples
def _make(shape, dtype, generator):
    """torch.testing.make_tensor(..., low=-2, high=2), as the OpInfo samples of grid_sample."""
    return torch.empty(shape, dtype=torch.float64).uniform_(-2, 2, generator=generator).to(dtype)


def _opinfo_sample(mode, padding_mode, align_corners, dtype=torch.float64):
    """One 2-D sample of sample_inputs_grid_sample: input (2, 3, S, S), grid (2, S, S, 2), S = 5."""
    g = torch.Generator().manual_seed(_seed(mode, padding_mode, align_corners))
    return _make((2, 3, 5, 5), dtype, g), _make((2, 5, 5, 2), dtype, g)


OPINFO_TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-9),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-2, rtol=1e-2),
    torch.bfloat16: dict(atol=1e-1, rtol=5e-2),
}


class TestOpInfoGridSample:
    """Adapted from pytorch torch/testing/_internal/common_methods_invocations.py: sample_inputs_grid_sample
    (the 2-D samples) of OpInfo("nn.functional.grid_sample"), with what the OpInfo suites check on them:
    its dtypes (floating types, float16, bfloat16), gradcheck with batched gradients, gradgradcheck
    (supports_gradgrad=True), non-contiguous samples, and vmap."""

    @pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_sample(self, mode, padding_mode, align_corners, dtype):
        image, grid = _opinfo_sample(mode, padding_mode, align_corners, dtype)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        assert_matches_torch(image, grid, tol=OPINFO_TOL[dtype], **kw)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_gradcheck_batched(self, mode, padding_mode, align_corners):
        image, grid = _opinfo_sample(mode, padding_mode, align_corners)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        fn = lambda x, g: sampling.grid_sample(x, g, **kw)  # noqa: E731
        inputs = (image.requires_grad_(), grid.requires_grad_())
        assert torch.autograd.gradcheck(fn, inputs, check_batched_grad=True, fast_mode=True)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_gradgradcheck(self, mode, padding_mode, align_corners):
        image, grid = _opinfo_sample(mode, padding_mode, align_corners)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        fn = lambda x, g: sampling.grid_sample(x, g, **kw)  # noqa: E731
        inputs = (image.requires_grad_(), grid.requires_grad_())
        assert torch.autograd.gradgradcheck(fn, inputs, check_batched_grad=True, fast_mode=True)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_noncontiguous(self, mode, padding_mode, align_corners):
        # as OpInfo's noncontiguous samples: each tensor a strided view of a larger one, same values
        image, grid = _opinfo_sample(mode, padding_mode, align_corners)
        image_nc = torch.repeat_interleave(image, 2, dim=-1)[..., ::2]
        grid_nc = torch.repeat_interleave(grid, 2, dim=-1)[..., ::2]
        assert not image_nc.is_contiguous() and not grid_nc.is_contiguous()
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        assert_matches_torch(image_nc, grid_nc, **kw)
        for a, b in zip(
            _run(sampling.grid_sample, image, grid, **kw), _run(sampling.grid_sample, image_nc, grid_nc, **kw)
        ):
            torch.testing.assert_close(a, b, atol=0, rtol=0)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_vmap(self, mode, padding_mode, align_corners):
        # as functorch's vmap and vjp-of-vmap tests: a batch of samples, mapped along a new leading dim
        g = torch.Generator().manual_seed(15)
        images, grids = _make((3, 2, 3, 5, 5), torch.float64, g), _make((3, 2, 5, 5, 2), torch.float64, g)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        ours = torch.func.vmap(lambda x, gr: sampling.grid_sample(x, gr, **kw))(images, grids)
        theirs = torch.func.vmap(lambda x, gr: F.grid_sample(x, gr, **kw))(images, grids)
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
        cotangent = _make(ours.shape, torch.float64, g)
        vjps = [
            torch.func.vjp(torch.func.vmap(lambda x, gr, fn=fn: fn(x, gr, **kw)), images, grids)[1](cotangent)
            for fn in (sampling.grid_sample, F.grid_sample)
        ]
        for a, b in zip(*vjps):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


class TestOpInfoGridSampler2d:
    """Adapted from pytorch torch/testing/_internal/common_methods_invocations.py: sample_inputs_grid_sampler_2d
    (input (2, 3, S, L), grid (2, M + 3, M, 2), S = 5, L = 20, M = 10; modes 0 and 1 = bilinear and nearest)."""

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_sample(self, mode, padding_mode, align_corners):
        g = torch.Generator().manual_seed(16)
        image, grid = _make((2, 3, 5, 20), torch.float64, g), _make((2, 13, 10, 2), torch.float64, g)
        weights = _make((2, 3, 13, 10), torch.float64, g)
        assert_matches_torch(image, grid, weights, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


class TestOpInfoReferenceInputs:
    """Adapted from pytorch torch/testing/_internal/common_methods_invocations.py: reference_inputs_grid_sample
    (a 2 x 3 x 345 x 456 image of uint8 values, a 45-degree rotation with scales 1.23 and 1.34), in
    float64 for every mode, and in float32 for the spatial transformer's (bilinear, zero padding)."""

    @staticmethod
    def _check(mode, padding_mode, align_corners, dtype, tol):
        batch, channels, height, width = 2, 3, 345, 456
        a = math.radians(45.0)
        ca, sa, s1, s2 = math.cos(a), math.sin(a), 1.23, 1.34
        theta = torch.tensor([[[ca / s1, sa, 0.0], [-sa, ca / s2, 0.0]]], dtype=dtype).expand(batch, 2, 3).contiguous()
        image = torch.arange(batch * channels * height * width).reshape(batch, channels, height, width)
        image = image.to(torch.uint8).to(dtype)
        size = (batch, channels, height, width)
        grid = F.affine_grid(theta, size, align_corners=align_corners)
        torch.testing.assert_close(sampling.affine_grid(theta, size, align_corners=align_corners), grid)
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        torch.testing.assert_close(sampling.grid_sample(image, grid, **kw), F.grid_sample(image, grid, **kw), **tol)

    @pytest.mark.parametrize("mode, padding_mode, align_corners", MODE_PAD_ALIGN, ids=MPA_IDS)
    def test_reference_input(self, mode, padding_mode, align_corners):
        self._check(mode, padding_mode, align_corners, torch.float64, dict(atol=1e-10, rtol=1e-10))

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_reference_input_float32(self, align_corners):
        # In float32, torch's CPU kernel fuses the multiply-add that unnormalises the grid (one rounding
        # instead of two), so a coordinate near x = 456 can differ from ours by one unit in the last
        # place, 3e-5 pixels; between neighbouring pixels that differ by 255 (this image's uint8 wrap)
        # that moves the value by up to 255 * 3e-5 = 0.008.
        self._check("bilinear", "zeros", align_corners, torch.float32, dict(atol=255 * 2 * 2**-15, rtol=0))


# =========================================================================== kornia
class TestKorniaGrid:
    """Adapted from kornia tests/geometry/test_grid.py (create_meshgrid): the identity grid stnlib's
    affine_grid makes, its corner values, and a singleton axis that sits at 0 (centred), as torch."""

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_create_meshgrid(self, align_corners):
        height, width = 4, 6
        identity = torch.eye(2, 3)[None]
        grid = sampling.affine_grid(identity, (1, 1, height, width), align_corners=align_corners)
        assert grid.shape == (1, height, width, 2)
        torch.testing.assert_close(grid, F.affine_grid(identity, (1, 1, height, width), align_corners=align_corners))
        corner = 1.0 if align_corners else (width - 1) / width
        torch.testing.assert_close(grid[0, 0, 0, 0], torch.tensor(-corner))
        torch.testing.assert_close(grid[0, -1, -1, 0], torch.tensor(corner))

    @pytest.mark.filterwarnings("ignore:.*See the documentation of affine_grid for details")
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("height, width", [(1, 4), (4, 1), (1, 1)])
    def test_singleton_axis_is_centred(self, height, width, align_corners):
        identity = torch.eye(2, 3)[None]
        grid = sampling.affine_grid(identity, (1, 1, height, width), align_corners=align_corners)
        torch.testing.assert_close(grid, F.affine_grid(identity, (1, 1, height, width), align_corners=align_corners))
        if height == 1:
            assert torch.count_nonzero(grid[..., 1]) == 0
        if width == 1:
            assert torch.count_nonzero(grid[..., 0]) == 0


def _pixel_theta(matrix, src_size, dst_size, align_corners=True):
    """stnlib's theta for a kornia-style dst <- src pixel matrix (2, 3)."""
    full = torch.cat([torch.as_tensor(matrix, dtype=torch.float64), torch.tensor([[0.0, 0.0, 1.0]])])
    theta = geometry.theta_from_pixel_transform(full, src_size=src_size, dst_size=dst_size, align_corners=align_corners)
    return theta.to(torch.float32)


class TestKorniaWarpAffine:
    """Adapted from kornia tests/geometry/transform/test_imgwarp.py::TestWarpAffine and the empty-size tests
    there (test_empty_destination_is_autograd_connected, test_empty_source_policy): stnlib's warp
    (hand-built grid and sampler) against torch's, and kornia's hand-computed results."""

    def test_smoke(self):
        image = torch.rand(1, 2, 3, 4, generator=torch.Generator().manual_seed(17))
        out = sampling.warp(image, torch.eye(2, 3)[None], (3, 4), sampler="stnlib", align_corners=True)
        torch.testing.assert_close(out, image)

    @pytest.mark.parametrize("out_shape", [[2, 5], [3, 4], [6, 2]], ids=str)
    @pytest.mark.parametrize("batch_shape", [[1, 3, 2, 5], [2, 4, 3, 4], [3, 5, 6, 2]], ids=str)
    def test_cardinality(self, batch_shape, out_shape):
        image = torch.rand(batch_shape, generator=torch.Generator().manual_seed(18))
        theta = torch.eye(2, 3).repeat(batch_shape[0], 1, 1)
        out = sampling.warp(image, theta, out_shape, sampler="stnlib")
        assert out.shape == (batch_shape[0], batch_shape[1], *out_shape)
        torch.testing.assert_close(out, sampling.warp(image, theta, out_shape, sampler="torch"))

    def test_translation(self):
        h, w = 3, 4
        image = torch.arange(float(h * w)).view(1, 1, h, w)
        theta = _pixel_theta([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], (h, w), (h, w))  # one pixel right and down
        expected = torch.zeros_like(image)
        expected[..., 1:, 1:] = image[..., :2, :3]  # kornia's (and OpenCV's) result
        out = sampling.warp(image, theta, sampler="stnlib", align_corners=True)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(out, sampling.warp(image, theta, sampler="torch", align_corners=True))

    def test_rotation_inverse(self):
        h, w = 4, 4
        image = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(19))
        # 90 degrees anticlockwise about the centre, as OpenCV's getRotationMatrix2D
        rotation = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 3.0]])
        inverse = torch.linalg.inv(torch.cat([rotation, torch.tensor([[0.0, 0.0, 1.0]])]))[:2]
        there = sampling.warp(image, _pixel_theta(rotation, (h, w), (h, w)), sampler="stnlib", align_corners=True)
        back = sampling.warp(there, _pixel_theta(inverse, (h, w), (h, w)), sampler="stnlib", align_corners=True)
        torch.testing.assert_close(back, image, atol=1e-4, rtol=1e-4)
        expected = sampling.warp(image, _pixel_theta(rotation, (h, w), (h, w)), sampler="torch", align_corners=True)
        torch.testing.assert_close(there, expected)

    def test_gradcheck(self):
        # kornia nudges its identity matrix by 1e-6; added to theta, that leaves the points within
        # gradcheck's step of the kinks at the pixel centres, where torch's sampler fails gradcheck as
        # ours does. 1e-3 keeps them clear of the kinks.
        image = torch.rand(1, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(20))
        theta = (torch.eye(2, 3, dtype=torch.float64)[None] + 1e-3).requires_grad_()
        image.requires_grad_()
        assert torch.autograd.gradcheck(lambda x, t: sampling.warp(x, t, sampler="stnlib"), (image, theta))
        grads = [
            torch.autograd.grad(sampling.warp(image, theta, sampler=s).sum(), (image, theta))
            for s in ("stnlib", "torch")
        ]
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("out_size", [(0, 4), (3, 0)], ids=str)
    def test_empty_destination_is_autograd_connected(self, out_size, align_corners):
        # kornia builds an empty grid for an empty destination; the sampler returns an empty
        # output whose backward gives zero gradients (torch does the same)
        image = torch.rand(1, 3, 3, 4, generator=torch.Generator().manual_seed(21))
        grid = torch.zeros(1, *out_size, 2)
        out, grad_image, grad_grid = _run(sampling.grid_sample, image, grid, align_corners=align_corners)
        assert out.shape == (1, 3, *out_size) and out.numel() == 0
        assert torch.count_nonzero(grad_image) == 0 and grad_grid.shape == grid.shape
        assert_matches_torch(image, grid, align_corners=align_corners)

    @pytest.mark.parametrize("out_size", [(0, 4), (3, 4)], ids=str)
    def test_empty_source_is_refused(self, out_size):
        # kornia returns an empty output for an empty source and an empty destination; torch refuses
        # any empty source, and so does stnlib
        image, grid = torch.empty(1, 3, 0, 4), torch.zeros(1, *out_size, 2)
        with pytest.raises(RuntimeError, match="non-empty spatial dimensions"):
            F.grid_sample(image, grid, align_corners=False)
        with pytest.raises(ValueError, match="input must have non-empty spatial dimensions"):
            sampling.grid_sample(image, grid)


class TestKorniaRemap:
    """Adapted from kornia tests/geometry/transform/test_imgwarp.py::TestRemap (remap = grid_sample on a
    pixel grid, align_corners=True): test_smoke, test_shift, test_shift_batch, test_normalized_coordinates,
    test_gradcheck."""

    @staticmethod
    def _pixel_grid(height, width, batch=1):
        ys, xs = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
        return torch.stack([xs, ys], dim=-1)[None].repeat(batch, 1, 1, 1)

    @staticmethod
    def _normalised(pixel_grid, height, width):
        return torch.stack([2 * pixel_grid[..., 0] / (width - 1) - 1, 2 * pixel_grid[..., 1] / (height - 1) - 1], -1)

    def test_smoke(self):
        image = torch.ones(1, 1, 3, 4)
        grid = self._normalised(self._pixel_grid(3, 4), 3, 4)
        torch.testing.assert_close(sampling.grid_sample(image, grid, align_corners=True), image)

    def test_shift(self):
        image = torch.ones(1, 1, 3, 4)
        expected = torch.tensor([[[[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
        grid = self._normalised(self._pixel_grid(3, 4) + 1.0, 3, 4)
        out = sampling.grid_sample(image, grid, align_corners=True)
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
        assert_matches_torch(image, grid, align_corners=True)

    def test_shift_batch(self):
        image = torch.ones(2, 1, 3, 4)
        expected = torch.tensor(
            [
                [[[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]],
                [[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]],
            ]
        )
        pixels = self._pixel_grid(3, 4, batch=2)
        pixels[0, ..., 0] += 1.0  # shift in x
        pixels[1, ..., 1] += 1.0  # shift in y
        grid = self._normalised(pixels, 3, 4)
        torch.testing.assert_close(
            sampling.grid_sample(image, grid, align_corners=True), expected, atol=1e-4, rtol=1e-4
        )
        assert_matches_torch(image, grid, align_corners=True)

    def test_normalized_coordinates(self):
        image = torch.ones(2, 1, 3, 4)
        grid = sampling.affine_grid(torch.eye(2, 3).repeat(2, 1, 1), (2, 1, 3, 4), align_corners=True)
        torch.testing.assert_close(sampling.grid_sample(image, grid, align_corners=True), image, atol=1e-4, rtol=1e-4)

    def test_gradcheck(self):
        image = torch.rand(1, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(22))
        grid = self._normalised(self._pixel_grid(3, 4).double(), 3, 4)
        image.requires_grad_()
        assert torch.autograd.gradcheck(lambda x: sampling.grid_sample(x, grid, align_corners=True), (image,))
