"""Checks for notebook 03 · Bilinear sampling by hand (solutions/03_bilinear_sampling/03_bilinear_sampling.ipynb).

One pair of functions per graded property:

==========================================  =======================================================
exercise                                    checks
==========================================  =======================================================
1 ``nearest_one(image, x_pix, y_pix)``      :func:`check_nearest_one`, :func:`grade_nearest_one`
2 ``bilinear_one(image, x_pix, y_pix)``     :func:`check_bilinear_one`, :func:`grade_bilinear_one`
3 ``bilinear_sample(input, grid, ...)``     :func:`check_bilinear_sample`, :func:`grade_bilinear_sample`,
                                            :func:`check_bilinear_sample_gradients`,
                                            :func:`grade_bilinear_sample_gradients`
4 ``pad_coords(coord_pix, size, ...)``      :func:`check_pad_coords`, :func:`grade_pad_coords`
5 ``bilinear_grad_one(image, x_pix, y_pix)`` :func:`check_bilinear_grad_one`, :func:`grade_bilinear_grad_one`
==========================================  =======================================================

The oracle is always torch: ``F.grid_sample`` and its autograd. Exercises 1, 2 and 5 take a
point in *pixel* coordinates; the checks turn it into the normalised point that
``F.grid_sample(..., align_corners=True)`` reads at the same place, x_norm = 2 x_pix / (W - 1) - 1.
Exercise 4 uses a ramp image whose pixel values equal their column index: bilinear sampling of
it with a padding mode returns exactly the padded coordinate. Every expected value is computed
first; the learner's function then runs inside :func:`reference_ops_blocked`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .common import CheckFailed, call_learner, check_close, passed, reference_ops_blocked

__all__ = [
    "check_nearest_one",
    "grade_nearest_one",
    "check_bilinear_one",
    "grade_bilinear_one",
    "check_bilinear_sample",
    "grade_bilinear_sample",
    "check_bilinear_sample_gradients",
    "grade_bilinear_sample_gradients",
    "check_pad_coords",
    "grade_pad_coords",
    "check_bilinear_grad_one",
    "grade_bilinear_grad_one",
]

# A 3x4 image (H=3, W=4) with distinct, non-zero values: a read outside (0) or a swapped x/y shows.
_IMAGE_3x4 = [[1.0, 2.0, 4.0, 7.0], [3.0, 5.0, 6.0, 9.0], [8.0, 10.0, 11.0, 12.0]]


def _image_3x4(dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(_IMAGE_3x4, dtype=dtype)


def _call(fn, *args, name: str, on: str, **kwargs):
    """Call the learner's function (:func:`~stnlib.checks.common.call_learner`): any error it raises becomes a
    :class:`CheckFailed` naming the input; an index out of bounds (a read outside the image) gets a hint."""
    try:
        return call_learner(fn, *args, name=name, on=on, **kwargs)
    except CheckFailed as err:
        cause = err.__cause__
        if isinstance(cause, IndexError) and "out of bounds" in str(cause):
            raise CheckFailed(
                f"{name} on {on}: raised IndexError ({cause}); points outside the image must read 0, not index it"
            ) from cause
        raise


def _backward(loss: torch.Tensor, *, name: str, on: str) -> None:
    """``loss.backward()``; an error in the backward pass of the learner's graph becomes a CheckFailed naming the input."""
    call_learner(loss.backward, name=f"{name} (backward pass through your result)", on=on)


def _compare(got, expected: torch.Tensor, *, fn: str, on: str, atol: float, mistakes=(), labels=()) -> None:
    """``check_close``; on failure add a ``Hint:`` line when ``got`` matches what a typical mistake returns.

    Args:
        mistakes: pairs (tensor that the mistake returns, hint).
        labels: names of the entries along the last axis (e.g. ("dV/dx_pix", "dV/dy_pix")).
    """
    check_close(got, expected, fn=fn, on=on, atol=atol, mistakes=mistakes, labels=labels)


def _tol(dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 1e-6


def _to_norm(pix: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Pixel coordinates along an axis of ``size`` pixels -> normalised (torch's convention)."""
    if align_corners:
        return 2 * pix / (size - 1) - 1
    return (2 * pix + 1) / size - 1


def _points_grid(image: torch.Tensor, xs, ys) -> torch.Tensor:
    """Pixel points (lists of P floats) on an (H, W) image -> a (1, 1, P, 2) float64 grid, align_corners=True."""
    height, width = image.shape
    x = _to_norm(torch.tensor(xs, dtype=torch.float64), width, True)
    y = _to_norm(torch.tensor(ys, dtype=torch.float64), height, True)
    return torch.stack([x, y], dim=-1).reshape(1, 1, -1, 2)


def _sample_points(image: torch.Tensor, xs, ys, mode: str, padding_mode: str = "zeros") -> torch.Tensor:
    """torch's value at each pixel point: (P,) float64, align_corners=True."""
    img = image.detach().to(torch.float64)[None, None]
    out = F.grid_sample(img, _points_grid(img[0, 0], xs, ys), mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.reshape(-1)


def _read(image: torch.Tensor, rows, cols, *, clamp: bool = False) -> torch.Tensor:
    """image[row, col] for whole-number lists rows, cols (P,) float64; 0 outside (or the clamped pixel)."""
    height, width = image.shape
    out = []
    for r, c in zip(rows, cols):
        if clamp:
            r, c = min(max(r, 0), height - 1), min(max(c, 0), width - 1)
        out.append(float(image[r, c]) if 0 <= r < height and 0 <= c < width else 0.0)
    return torch.tensor(out, dtype=torch.float64)


def _grad_points(image: torch.Tensor, xs, ys) -> torch.Tensor:
    """torch's (dV/dx_pix, dV/dy_pix) of bilinear sampling at each pixel point: (P, 2) float64.

    autograd gives d/dx_norm; with align_corners=True, x_norm = 2 x_pix / (W - 1) - 1, so
    d/dx_pix = d/dx_norm * 2 / (W - 1) (and the same for y with H).
    """
    img = image.detach().to(torch.float64)[None, None]
    height, width = image.shape
    grid = _points_grid(img[0, 0], xs, ys).requires_grad_(True)
    F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True).sum().backward()
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=torch.float64)
    return grid.grad.reshape(-1, 2) * scale


def _coords(gen: torch.Generator, n: int, low: int, high: int, avoid: float | None) -> list:
    """n pixel coordinates in [low, high), with fractional parts kept away from ``avoid`` (0.5 or 0.0)."""
    whole = torch.randint(low, high, (n,), generator=gen).to(torch.float64)
    frac = 0.03 + 0.94 * torch.rand(n, generator=gen, dtype=torch.float64)
    if avoid == 0.5:
        near = (frac - 0.5).abs() < 0.03
        frac = torch.where(near, frac + 0.1, frac)
    return (whole + frac).tolist()


def _random_image(gen: torch.Generator, height: int, width: int, dtype) -> torch.Tensor:
    """Values in [0.5, 1.5): never 0, so that a wrong 'outside' reads as a wrong value."""
    return (0.5 + torch.rand(height, width, generator=gen, dtype=torch.float64)).to(dtype)


def _point_cases(
    fn,
    name: str,
    image: torch.Tensor,
    xs,
    ys,
    expected: torch.Tensor,
    *,
    atol: float,
    what: str,
    mistakes=(),
    labels=(),
):
    """Call fn(image, x, y) for every point inside the blocked context and compare with expected[i].

    Args:
        mistakes: pairs (tensor like ``expected``: what a typical mistake returns at each point, hint).
        labels: names of the entries of each result, when it holds several quantities.
    """
    height, width = image.shape
    with reference_ops_blocked():
        for i, (x, y) in enumerate(zip(xs, ys)):
            on = f"{what} image (H={height}, W={width}, {str(image.dtype)[6:]}), x_pix={x:.4g}, y_pix={y:.4g}"
            got = _call(fn, image, x, y, name=name, on=on)
            _compare(
                got, expected[i], fn=name, on=on, atol=atol, mistakes=[(w[i], h) for w, h in mistakes], labels=labels
            )


# --------------------------------------------------------------------------- exercise 1: nearest_one
_NEAREST_POINTS = [  # (x_pix, y_pix) on the 3x4 image; the first ones catch a swap of x and y
    (2.2, 0.8),
    (0.7, 1.9),
    (2.8, 0.3),
    (3.4, 2.2),
    (-0.4, 1.2),
    (1.2, -0.3),
    (-0.7, 1.0),
    (4.6, 1.0),
    (1.0, -0.6),
    (1.3, 2.6),
    (6.0, 5.0),
]


def _nearest_mistakes(image: torch.Tensor, xs, ys):
    rx, ry = [round(x) for x in xs], [round(y) for y in ys]
    fx, fy = [math.floor(x) for x in xs], [math.floor(y) for y in ys]
    return [
        (_read(image, rx, ry), "x is the column and y the row: read image[row, col] = image[round(y), round(x)]"),
        (_read(image, fy, fx), "round to the nearest pixel (round), not down (floor/int)"),
        (
            _read(image, ry, rx, clamp=True),
            "a point whose nearest pixel lies outside the image reads 0 (this looks like clamping to the border)",
        ),
    ]


def check_nearest_one(fn) -> None:
    """Visible check of ``nearest_one(image, x_pix, y_pix) -> ()``: points inside, near the border, outside.

    Args:
        fn: the learner's function, image (H, W), x_pix and y_pix Python floats -> 0-dim tensor.
    """
    image = _image_3x4()
    xs, ys = zip(*_NEAREST_POINTS)
    expected = _sample_points(image, xs, ys, "nearest")
    _point_cases(
        fn, "nearest_one", image, xs, ys, expected, atol=1e-9, what="the 3x4", mistakes=_nearest_mistakes(image, xs, ys)
    )
    passed("nearest_one: rounds x (column) and y (row) to the nearest pixel, 0 outside the image")


def grade_nearest_one(fn) -> None:
    """Hidden tests of ``nearest_one``: random images of several sizes, float32 and float64, points outside too.

    No point has a fractional part near 0.5 (torch rounds exact ties to even; the exercise does not ask for that).
    """
    gen = torch.Generator().manual_seed(3031)
    for height, width, dtype in [(5, 7, torch.float64), (6, 4, torch.float32), (2, 9, torch.float64)]:
        image = _random_image(gen, height, width, dtype)
        xs = _coords(gen, 12, -2, width + 1, avoid=0.5)
        ys = _coords(gen, 12, -2, height + 1, avoid=0.5)
        expected = _sample_points(image, xs, ys, "nearest")
        _point_cases(
            fn,
            "nearest_one",
            image,
            xs,
            ys,
            expected,
            atol=_tol(dtype),
            what="a random",
            mistakes=_nearest_mistakes(image, xs, ys),
        )
    print("nearest_one: hidden tests passed")


# --------------------------------------------------------------------------- exercise 2: bilinear_one
_BILINEAR_POINTS = [  # inside, exactly on a pixel, on the last column, partly outside, fully outside
    (1.3, 0.6),
    (2.7, 1.4),
    (2.0, 1.0),
    (3.0, 0.25),
    (0.5, 2.0),
    (-0.4, 1.5),
    (3.5, 2.2),
    (1.2, 2.7),
    (2.6, -0.3),
    (-0.5, -0.5),
    (5.0, 1.0),
    (1.0, -1.2),
    (4.0, 3.0),
]


def _bilinear_mistakes(image: torch.Tensor, xs, ys):
    mirrored_x = [2 * math.floor(x) + 1 - x for x in xs]  # weights a and 1 - a swapped
    mirrored_y = [2 * math.floor(y) + 1 - y for y in ys]
    swapped = _sample_points(image.t(), xs, ys, "bilinear")  # reading image[col, row] = image.t()[row, col]
    return [
        (swapped, "x is the column and y the row: the pixel at (col m, row n) is image[n, m]"),
        (
            _sample_points(image, mirrored_x, mirrored_y, "bilinear"),
            "with a = x - floor(x), the left neighbour's weight is 1 - a and the right one's is a (weights swapped?)",
        ),
        (
            _sample_points(image, xs, ys, "bilinear", "border"),
            "a neighbour outside the image counts as 0 (this looks like clamping it to the border)",
        ),
    ]


def check_bilinear_one(fn) -> None:
    """Visible check of ``bilinear_one(image, x_pix, y_pix) -> ()``: inside, on pixels, partly and fully outside.

    Args:
        fn: the learner's function, image (H, W), x_pix and y_pix Python floats -> 0-dim tensor.
    """
    image = _image_3x4()
    xs, ys = zip(*_BILINEAR_POINTS)
    expected = _sample_points(image, xs, ys, "bilinear")
    _point_cases(
        fn,
        "bilinear_one",
        image,
        xs,
        ys,
        expected,
        atol=1e-9,
        what="the 3x4",
        mistakes=_bilinear_mistakes(image, xs, ys),
    )
    passed("bilinear_one: the four-neighbour weights, exact on pixels, out-of-image neighbours count as 0")


def grade_bilinear_one(fn) -> None:
    """Hidden tests of ``bilinear_one``: random images, float32 and float64, random points inside and outside."""
    gen = torch.Generator().manual_seed(3032)
    for height, width, dtype in [(5, 7, torch.float64), (6, 4, torch.float32), (3, 8, torch.float64)]:
        image = _random_image(gen, height, width, dtype)
        xs = _coords(gen, 12, -2, width + 1, avoid=None)
        ys = _coords(gen, 12, -2, height + 1, avoid=None)
        expected = _sample_points(image, xs, ys, "bilinear")
        _point_cases(
            fn,
            "bilinear_one",
            image,
            xs,
            ys,
            expected,
            atol=_tol(dtype),
            what="a random",
            mistakes=_bilinear_mistakes(image, xs, ys),
        )
    print("bilinear_one: hidden tests passed")


# --------------------------------------------------------------------------- exercise 3: bilinear_sample
def _grid_cases(gen: torch.Generator, n: int, c: int, size_in, size_out, spread: float, dtype):
    """A random input (N, C, H, W) and a random grid (N, H_out, W_out, 2) uniform in [-spread, spread]."""
    height, width = size_in
    h_out, w_out = size_out
    inp = torch.randn(n, c, height, width, generator=gen, dtype=torch.float64).to(dtype)
    grid = ((torch.rand(n, h_out, w_out, 2, generator=gen, dtype=torch.float64) * 2 - 1) * spread).to(dtype)
    return inp, grid


def _describe(inp: torch.Tensor, grid: torch.Tensor, align_corners, extra: str = "") -> str:
    return (
        f"input {tuple(inp.shape)}, grid {tuple(grid.shape)}{extra}, {str(inp.dtype)[6:]}, "
        f"align_corners={align_corners}"
    )


def _sample_cases(fn, cases) -> None:
    """cases: (input, grid, align_corners or None for the default, description). Expected first, then fn."""
    expected, mistakes = [], []
    for inp, grid, given, _ in cases:
        ac = bool(given)  # None: the exercise's default, False

        def sample(g=grid, padding="zeros", corners=ac, i=inp):
            return F.grid_sample(i, g, mode="bilinear", padding_mode=padding, align_corners=corners)

        expected.append(sample())
        mistakes.append(
            [
                (
                    sample(corners=not ac),
                    (
                        "this is the result for align_corners=True: called without align_corners, bilinear_sample "
                        "must use the default False, as F.grid_sample does: def bilinear_sample(input, grid, "
                        "align_corners=False)"
                    )
                    if given is None
                    else (
                        f"this is the result for align_corners={not ac}: check the normalised -> pixel formula of "
                        "each case"
                    ),
                ),
                (sample(padding="border"), "corners outside the image must count as 0 (mask them), not be clamped"),
                (
                    sample(g=grid.flip(-1)),
                    "grid[..., 0] is x (the column, size W) and grid[..., 1] is y (the row, size H)",
                ),
                (sample(i=_transposed_read(inp)), _TRANSPOSED_HINT),
            ]
        )
    with reference_ops_blocked():
        for (inp, grid, ac, on), exp, wrong in zip(cases, expected, mistakes):
            if ac is None:
                got = _call(fn, inp.clone(), grid.clone(), name="bilinear_sample", on=on)
            else:
                got = _call(fn, inp.clone(), grid.clone(), align_corners=ac, name="bilinear_sample", on=on)
            _compare(got, exp, fn="bilinear_sample (output)", on=on, atol=_tol(inp.dtype), mistakes=wrong)


def check_bilinear_sample(fn) -> None:
    """Visible check of ``bilinear_sample(input, grid, align_corners=False)`` against ``F.grid_sample``.

    Cases: the identity grid on a 3x4 image (the output must equal the input), then a random
    grid reaching outside [-1, 1] on a batch with two channels; both ``align_corners``, then the
    default (no ``align_corners`` given: False, as torch's).

    Args:
        fn: the learner's function, input (N, C, H, W) and grid (N, H_out, W_out, 2) -> (N, C, H_out, W_out).
    """
    gen = torch.Generator().manual_seed(303)
    image = _image_3x4()[None, None]
    cases = []
    for ac in (False, True):
        theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
        grid = F.affine_grid(theta, (1, 1, 3, 4), align_corners=ac)
        cases.append((image, grid, ac, _describe(image, grid, ac, " (identity)")))
    for ac in (False, True, None):
        inp, grid = _grid_cases(gen, 2, 2, (3, 5), (2, 3), 1.4, torch.float64)
        cases.append((inp, grid, ac, _describe(inp, grid, "default" if ac is None else ac, " in [-1.4, 1.4]")))
    _sample_cases(fn, cases)
    passed(
        "bilinear_sample: identity grid and a random batch match F.grid_sample, both align_corners and the "
        "default (False)"
    )


def grade_bilinear_sample(fn) -> None:
    """Hidden tests of ``bilinear_sample`` values: batches, H != W, grids far outside [-1, 1], float32 and float64,
    both ``align_corners`` and the default (False)."""
    gen = torch.Generator().manual_seed(3033)
    cases = []
    for n, c, size_in, size_out, dtype in [
        (3, 2, (5, 7), (4, 6), torch.float64),
        (2, 3, (6, 4), (3, 5), torch.float32),
        (1, 1, (28, 28), (9, 11), torch.float32),
    ]:
        for ac in (False, True, None):
            inp, grid = _grid_cases(gen, n, c, size_in, size_out, 2.5, dtype)
            cases.append((inp, grid, ac, _describe(inp, grid, "default" if ac is None else ac, " in [-2.5, 2.5]")))
    _sample_cases(fn, cases)
    print("bilinear_sample: hidden tests passed")


_TRANSPOSED_HINT = (
    "this is what reading pixel (row y, column x) at the flat index x * H + y gives: in an (H, W) image "
    "flattened row by row, pixel (y, x) sits at y * W + x"
)


def _transposed_read(inp: torch.Tensor) -> torch.Tensor:
    """The image a sampler sees when it reads pixel (y, x) at the flat index x * H + y (a common mistake)."""
    n, c, height, width = inp.shape
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return inp.reshape(n, c, -1)[:, :, (xs * height + ys).flatten()].reshape(n, c, height, width)


def _gradient_cases(fn, cases, *, gradcheck: bool = False) -> None:
    """Compare the gradients of sum(w * fn(input, grid)) w.r.t. input and grid with torch's (float64)."""
    expected, transposed = [], []
    for inp, grid, ac, weights, _ in cases:
        i, g = inp.clone().requires_grad_(True), grid.clone().requires_grad_(True)
        out = F.grid_sample(i, g, mode="bilinear", padding_mode="zeros", align_corners=ac)
        (out * weights).sum().backward()
        expected.append((out.detach(), i.grad, g.grad))
        i, g = inp.clone().requires_grad_(True), grid.clone().requires_grad_(True)  # the x * H + y mistake
        wrong = F.grid_sample(_transposed_read(i), g, mode="bilinear", padding_mode="zeros", align_corners=ac)
        (wrong * weights).sum().backward()
        transposed.append({"output": wrong.detach(), "input": i.grad, "grid": g.grad})
    with reference_ops_blocked():
        for (inp, grid, ac, weights, on), (exp_out, exp_i, exp_g), wrong in zip(cases, expected, transposed):
            i, g = inp.clone().requires_grad_(True), grid.clone().requires_grad_(True)
            out = _call(fn, i, g, align_corners=ac, name="bilinear_sample", on=on)
            check_close(
                out,
                exp_out,
                fn="bilinear_sample (output)",
                on=on,
                atol=1e-7,
                mistakes=[(wrong["output"], _TRANSPOSED_HINT)],
            )
            if not out.requires_grad:
                raise CheckFailed(
                    f"bilinear_sample on {on}: the output does not require grad; build it from "
                    "input and grid with torch operations (no .detach(), .item(), torch.no_grad())"
                )
            _backward((out * weights).sum(), name="bilinear_sample", on=on)
            for name, got, exp in (("input", i.grad, exp_i), ("grid", g.grad, exp_g)):
                if got is None:
                    raise CheckFailed(
                        f"bilinear_sample on {on}: no gradient reached {name}; the weights must be "
                        f"computed from the grid with torch operations (floor is fine, .long() "
                        f"only for the indices)"
                    )
                check_close(
                    got,
                    exp,
                    fn=f"bilinear_sample (gradient w.r.t. {name})",
                    on=on,
                    atol=1e-7,
                    mistakes=[(wrong[name], _TRANSPOSED_HINT)],
                )
            if gradcheck:
                _gradcheck(fn, inp, grid, ac, on)


def _gradcheck(fn, inp: torch.Tensor, grid: torch.Tensor, ac: bool, on: str) -> None:
    i, g = inp.clone().requires_grad_(True), grid.clone().requires_grad_(True)
    try:
        ok = torch.autograd.gradcheck(
            lambda a, b: fn(a, b, align_corners=ac), (i, g), eps=1e-6, atol=1e-5, raise_exception=True
        )
    except torch.autograd.gradcheck.GradcheckError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckFailed(f"bilinear_sample on {on}: torch.autograd.gradcheck failed: {first}") from None
    if not ok:  # pragma: no cover - raise_exception=True raises instead
        raise CheckFailed(f"bilinear_sample on {on}: torch.autograd.gradcheck failed")


def _off_kink_grid(gen: torch.Generator, n: int, size_in, size_out, ac: bool) -> torch.Tensor:
    """A float64 grid (N, H_out, W_out, 2) whose points, in input pixels, are never within 0.03 of an integer."""
    height, width = size_in
    count = n * size_out[0] * size_out[1]
    x = torch.tensor(_coords(gen, count, -2, width + 1, avoid=None), dtype=torch.float64)
    y = torch.tensor(_coords(gen, count, -2, height + 1, avoid=None), dtype=torch.float64)
    grid = torch.stack([_to_norm(x, width, ac), _to_norm(y, height, ac)], dim=-1)
    return grid.reshape(n, size_out[0], size_out[1], 2)


def check_bilinear_sample_gradients(fn) -> None:
    """Visible check that the gradients of ``bilinear_sample`` w.r.t. input and grid match torch's (float64).

    The points are kept away from whole pixel positions, where bilinear sampling has kinks.

    Args:
        fn: the learner's function (as in :func:`check_bilinear_sample`).
    """
    gen = torch.Generator().manual_seed(3034)
    cases = []
    for ac in (False, True):
        inp = torch.randn(2, 2, 3, 4, generator=gen, dtype=torch.float64)
        grid = _off_kink_grid(gen, 2, (3, 4), (2, 3), ac)
        weights = torch.randn(2, 2, 2, 3, generator=gen, dtype=torch.float64)
        cases.append((inp, grid, ac, weights, _describe(inp, grid, ac)))
    _gradient_cases(fn, cases)
    passed("bilinear_sample: gradients w.r.t. input and grid match autograd of F.grid_sample")


def grade_bilinear_sample_gradients(fn) -> None:
    """Hidden tests of the gradients of ``bilinear_sample``: larger batches, H != W, points outside the
    image, both ``align_corners``, plus ``torch.autograd.gradcheck`` on a 1x1x3x4 input (float64)."""
    gen = torch.Generator().manual_seed(3035)
    cases = []
    for n, c, size_in, size_out in [(3, 2, (5, 7), (4, 3)), (1, 1, (3, 4), (2, 2))]:
        for ac in (False, True):
            inp = torch.randn(n, c, *size_in, generator=gen, dtype=torch.float64)
            grid = _off_kink_grid(gen, n, size_in, size_out, ac)
            weights = torch.randn(n, c, *size_out, generator=gen, dtype=torch.float64)
            cases.append((inp, grid, ac, weights, _describe(inp, grid, ac)))
    _gradient_cases(fn, cases[:2])
    _gradient_cases(fn, cases[2:], gradcheck=True)
    print("bilinear_sample gradients: hidden tests passed")


# --------------------------------------------------------------------------- exercise 4: pad_coords
_PAD_COORDS = [-7.3, -2.2, -0.6, -0.3, 0.4, 2.0, 3.9, 4.2, 4.6, 5.1, 9.7, 13.3]


def _ramp_oracle(coords: torch.Tensor, size: int, padding_mode: str, align_corners: bool) -> torch.Tensor:
    """Padded pixel coordinates from torch: bilinear sampling of a ramp whose pixel values are their x index.

    Inside [0, size - 1] bilinear interpolation of a linear ramp is exact, so what
    ``F.grid_sample`` returns at a point is the coordinate it actually read at: the padded one.
    """
    c = coords.detach().to(torch.float64).reshape(-1)
    ramp = torch.arange(size, dtype=torch.float64).expand(1, 1, 3, size).contiguous()  # 3 equal rows
    grid = torch.stack([_to_norm(c, size, align_corners), torch.zeros_like(c)], dim=-1).reshape(1, 1, -1, 2)
    out = F.grid_sample(ramp, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
    return out.reshape(coords.shape)


def _pad_cases(fn, cases, padding_mode: str) -> None:
    """cases: (coords, size, align_corners). Expected first (the ramp), then fn."""
    expected, mistakes = [], []
    for coords, size, ac in cases:
        if padding_mode == "zeros":
            expected.append(coords.detach().to(torch.float64).clone())
            mistakes.append([])
            continue
        expected.append(_ramp_oracle(coords, size, padding_mode, ac))
        c = coords.detach().to(torch.float64)
        wrong = [(c.clamp(0, size), "the last pixel is size - 1, not size")]
        if padding_mode == "reflection":
            wrong.insert(
                0,
                (
                    _ramp_oracle(coords, size, padding_mode, not ac),
                    f"this is the reflection for align_corners={not ac}: with True the mirrors sit at "
                    "the centres of the edge pixels (0 and size - 1), with False at their outer edges "
                    "(-0.5 and size - 0.5)",
                ),
            )
        mistakes.append(wrong)
    with reference_ops_blocked():
        for (coords, size, ac), exp, wrong in zip(cases, expected, mistakes):
            on = (
                f"coord_pix={_short(coords)} {tuple(coords.shape)} {str(coords.dtype)[6:]}, size={size}, "
                f"padding_mode={padding_mode!r}, align_corners={ac}"
            )
            got = _call(fn, coords.clone(), size, padding_mode, ac, name="pad_coords", on=on)
            atol = _tol(coords.dtype) * max(1.0, size / 4)
            try:
                _compare(got, exp, fn="pad_coords", on=on, atol=atol, mistakes=wrong)
            except CheckFailed as err:
                if (
                    "Hint:" in str(err)
                    or padding_mode == "zeros"
                    or not isinstance(got, torch.Tensor)
                    or got.shape != exp.shape
                ):
                    raise
                if ((got < -atol) | (got > size - 1 + atol)).any():
                    raise CheckFailed(
                        f"{err}\n  Hint: the result must lie in [0, size - 1]: clamp after "
                        "padding (with align_corners=False a reflection can land in the half "
                        "pixel beyond an edge pixel's centre)"
                    ) from None
                raise


def _short(t: torch.Tensor) -> str:
    flat = t.flatten().tolist()
    shown = ", ".join(f"{v:.3g}" for v in flat[:4])
    return f"[{shown}{', ...' if len(flat) > 4 else ''}]"


def check_pad_coords(fn, padding_mode: str | None = None) -> None:
    """Visible check of ``pad_coords(coord_pix, size, padding_mode, align_corners)`` for one padding mode (or both).

    Coordinates inside, just outside and several image widths outside a 5-pixel axis (and a
    4-pixel one), shaped (3, 4), both ``align_corners``. For ``"border"`` it also checks that
    ``"zeros"`` leaves the coordinates as they are.

    Args:
        fn: the learner's function, coord_pix (...) -> (...) float.
        padding_mode: ``"border"`` or ``"reflection"``; None checks both (as the notebook's demo does).
    """
    if padding_mode is None:
        check_pad_coords(fn, "border")
        check_pad_coords(fn, "reflection")
        return
    if padding_mode not in ("border", "reflection"):
        raise ValueError(f"padding_mode must be 'border' or 'reflection'; got {padding_mode!r}")
    coords = torch.tensor(_PAD_COORDS, dtype=torch.float64).reshape(3, 4)
    cases = [(coords, 5, False), (coords, 5, True), (coords - 0.45, 4, False), (coords - 0.45, 4, True)]
    _pad_cases(fn, cases, padding_mode)
    if padding_mode == "border":
        _pad_cases(fn, cases[:2], "zeros")
        passed("pad_coords: 'border' clamps to [0, size - 1] (both align_corners); 'zeros' leaves coordinates alone")
    else:
        passed("pad_coords: 'reflection' mirrors at the right place for both align_corners, however far out")


def grade_pad_coords(fn, padding_mode: str) -> None:
    """Hidden tests of ``pad_coords`` for one padding mode: random coordinates up to three image widths outside,
    sizes 2 to 9, float32 and float64, shapes (7,) and (2, 3, 4), both ``align_corners``."""
    gen = torch.Generator().manual_seed(3036 if padding_mode == "border" else 3037)
    cases = []
    for shape, dtype in [((7,), torch.float64), ((2, 3, 4), torch.float32), ((2, 3, 4), torch.float64)]:
        for ac in (False, True):
            size = int(torch.randint(2, 10, (1,), generator=gen))
            coords = ((torch.rand(*shape, generator=gen, dtype=torch.float64) * 7 - 3) * size).to(dtype)
            cases.append((coords, size, ac))
    _pad_cases(fn, cases, padding_mode)
    print(f"pad_coords ({padding_mode!r}): hidden tests passed")


# --------------------------------------------------------------------------- exercise 5: bilinear_grad_one
_GRAD_LABELS = ("dV/dx_pix", "dV/dy_pix")
_GRAD_POINTS = [  # never on a whole pixel coordinate (the kinks); inside, partly outside, fully outside
    (1.3, 0.6),
    (2.7, 1.4),
    (0.2, 1.8),
    (-0.4, 1.5),
    (3.3, 0.2),
    (1.2, 2.6),
    (2.6, -0.3),
    (5.5, 1.2),
]


def _grad_mistakes(expected: torch.Tensor):
    return [
        (expected.flip(-1), "return (dV/dx, dV/dy) in that order: x first"),
        (-expected, "eq. 7: the sign is +1 for a neighbour at m >= x (to the right of the point), -1 to its left"),
    ]


def check_bilinear_grad_one(fn) -> None:
    """Visible check of ``bilinear_grad_one(image, x_pix, y_pix) -> (2,)`` = (dV/dx_pix, dV/dy_pix).

    Expected values: autograd of ``F.grid_sample(align_corners=True)`` at the same point, turned
    into pixel units (d/dx_pix = d/dx_norm * 2 / (W - 1)). No point lies on a whole pixel coordinate.

    Args:
        fn: the learner's function, image (H, W), x_pix and y_pix Python floats -> (2,) tensor.
    """
    image = _image_3x4()
    xs, ys = zip(*_GRAD_POINTS)
    expected = _grad_points(image, xs, ys)
    _point_cases(
        fn,
        "bilinear_grad_one",
        image,
        xs,
        ys,
        expected,
        atol=1e-9,
        what="the 3x4",
        mistakes=_grad_mistakes(expected),
        labels=_GRAD_LABELS,
    )
    passed("bilinear_grad_one: (dV/dx, dV/dy) match autograd of F.grid_sample, inside and at the border")


def grade_bilinear_grad_one(fn) -> None:
    """Hidden tests of ``bilinear_grad_one``: random images, float32 and float64, random off-kink points."""
    gen = torch.Generator().manual_seed(3038)
    for height, width, dtype in [(5, 7, torch.float64), (6, 4, torch.float32), (3, 8, torch.float64)]:
        image = _random_image(gen, height, width, dtype)
        xs = _coords(gen, 10, -2, width + 1, avoid=None)
        ys = _coords(gen, 10, -2, height + 1, avoid=None)
        expected = _grad_points(image, xs, ys)
        _point_cases(
            fn,
            "bilinear_grad_one",
            image,
            xs,
            ys,
            expected,
            atol=_tol(dtype),
            what="a random",
            mistakes=_grad_mistakes(expected),
            labels=_GRAD_LABELS,
        )
    print("bilinear_grad_one: hidden tests passed")
