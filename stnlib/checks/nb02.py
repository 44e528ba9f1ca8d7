"""Checks for notebook 02 · Normalised coordinates and the sampling grid.

Exercises (each graded on its own, with plain torch):

1. ``pixel_to_norm(xy_pix, *, size, align_corners)``: (..., 2) pixels -> (..., 2) normalised.
2. ``norm_to_pixel(xy_norm, *, size, align_corners)``: the inverse.
3. ``theta_shift_pixels(dx_pix, dy_pix, *, size, align_corners)``: the (2, 3) theta that moves the
   image content ``dx_pix`` pixels right and ``dy_pix`` pixels down.
4. ``base_grid(height, width, *, align_corners)``: (H, W, 3) of (x, y, 1) at the output pixel centres.
5. ``affine_grid_by_hand(theta, size, align_corners=False)``: (N, 2, 3) -> (N, H, W, 2), as
   ``F.affine_grid``.

The oracle is always torch: ``F.affine_grid`` with the identity theta gives the normalised
coordinates of every pixel centre (pixel (j, i) <-> ``grid[0, i, j]``), and the map is affine per
axis, so its offset and step per pixel, read off that grid, give the answer anywhere, also beyond the
image. When a result is wrong and matches a typical mistake (the other ``align_corners`` formula,
H and W swapped, (y, x) instead of (x, y), a transposed theta, a shift with the wrong sign), the
message says so in a ``Hint:`` line.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import CheckFailed, call_learner, check_close, passed

__all__ = [
    "check_pixel_to_norm",
    "grade_pixel_to_norm",
    "check_norm_to_pixel",
    "grade_norm_to_pixel",
    "check_theta_shift_pixels",
    "grade_theta_shift_pixels",
    "check_base_grid",
    "grade_base_grid",
    "check_affine_grid_by_hand",
    "grade_affine_grid_by_hand",
    "check_affine_grid_by_hand_autograd",
    "grade_affine_grid_by_hand_autograd",
]

_DIAG_ATOL = 1e-5  # how close a result must be to a typical mistake for the hint to name it
_ATOL = {torch.float32: 1e-5, torch.float64: 1e-8}


# --------------------------------------------------------------------------- oracle helpers
def _identity_grid(height: int, width: int, align_corners: bool, dtype=torch.float64) -> torch.Tensor:
    """torch's identity sampling grid (H, W, 2): grid[i, j] = normalised (x, y) of pixel (col j, row i)."""
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=dtype)
    return F.affine_grid(theta, (1, 1, height, width), align_corners=align_corners)[0]


def _axis_maps(size, align_corners: bool, dtype=torch.float64):
    """Pixel -> normalised as ``offset + xy_pix * step``, per axis, read off torch's identity grid.

    Returns offset (2,) and step (2,), both (x, y). Needs H, W >= 2.
    """
    height, width = size
    g = _identity_grid(height, width, align_corners, dtype)
    offset = g[0, 0]
    step = torch.stack([g[0, 1, 0] - g[0, 0, 0], g[1, 0, 1] - g[0, 0, 1]])
    return offset, step


def _pixel_centres(height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 2): entry [i, j] is the pixel coordinate (x, y) = (j, i)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def _diagnose(got, mistakes) -> str | None:
    """The hint of the first typical mistake that ``got`` reproduces (a tensor close to it, or its shape)."""
    if not isinstance(got, torch.Tensor):
        return None
    for hint, wrong in mistakes:
        if isinstance(wrong, tuple):
            if tuple(got.shape) == wrong:
                return hint
        elif tuple(got.shape) == tuple(wrong.shape) and torch.isfinite(got).all():
            if torch.allclose(got.detach().double(), wrong.detach().double(), atol=_DIAG_ATOL, rtol=0.0):
                return hint
    return None


def _compare(got, expected, *, fn, on, atol, mistakes=(), diagnose=None, dtype=None) -> None:
    """``check_close``; on failure, add a ``Hint:`` line if ``diagnose`` (default ``got``) matches a typical mistake.

    Args:
        mistakes: pairs (hint, tensor or shape tuple) describing what a typical mistake returns.
        diagnose: what to hold against ``mistakes`` if not ``got`` itself (e.g. the theta behind an image).
        dtype: if given, ``got`` must have this dtype (checked before the values).
    """
    if dtype is not None and isinstance(got, torch.Tensor) and got.dtype != dtype:
        raise CheckFailed(
            f"{fn} on {on}: expected a {dtype} result for {dtype} input, got {got.dtype} "
            "(create new tensors with dtype=<input>.dtype, or compute only with the input)"
        )
    try:
        check_close(got, expected, fn=fn, on=on, atol=atol)
    except CheckFailed as err:
        hint = _diagnose(got if diagnose is None else diagnose, mistakes)
        if hint is None:
            raise
        raise CheckFailed(f"{err}\n  Hint: {hint}") from None


def _call(fn, *args, name: str, on: str, **kwargs):
    """Call the learner's function with torch's and stnlib's reference ops switched off; an error inside
    it becomes a :class:`CheckFailed` naming the input (:func:`~stnlib.checks.common.call_learner`)."""
    return call_learner(fn, *args, name=name, on=on, **kwargs)


def _other_centres(align_corners: bool) -> str:
    """The hint for a base grid built with the other align_corners: the normalised centres, not pixels."""
    if align_corners:
        return (
            "this is the align_corners=False grid; with align_corners=True the pixel centres are at "
            "x = 2 j / (W - 1) - 1 for j = 0 .. W - 1 (torch.linspace(-1, 1, W)), y likewise with H"
        )
    return (
        "this is the align_corners=True grid (torch.linspace(-1, 1, W)); with align_corners=False the pixel "
        "centres are at x = (2 j + 1) / W - 1 for j = 0 .. W - 1 (half a pixel in from each edge), y likewise with H"
    )


def _other(align_corners: bool) -> str:
    """The hint for norm_to_pixel with the other align_corners: the normalised -> pixel formula."""
    return f"this is the align_corners={not align_corners} formula; with align_corners={align_corners} " + (
        "-1 and +1 are the centres of the corner pixels: x_pix = (x + 1) / 2 * (W - 1)"
        if align_corners
        else "-1 and +1 are the outer edges of the corner pixels: x_pix = ((x + 1) * W - 1) / 2"
    )


def _other_to_norm(align_corners: bool) -> str:
    """The hint for pixel_to_norm with the other align_corners: the pixel -> normalised formula it needs."""
    return f"this is the align_corners={not align_corners} formula; with align_corners={align_corners} " + (
        "-1 and +1 are the centres of the corner pixels: x = 2 * x_pix / (W - 1) - 1"
        if align_corners
        else "-1 and +1 are the outer edges of the corner pixels: x = (2 * x_pix + 1) / W - 1"
    )


def _float32_accurate(name: str) -> str:
    return (
        "the dtype is right but the values are only float32-accurate: a tensor made without dtype= "
        "(torch.tensor, torch.zeros, torch.linspace, ...) is float32 and rounds what it holds; "
        f"create it with dtype={name}.dtype, or compute with {name} and Python numbers only"
    )


_SWAP_HW = "H and W are swapped: x (the column) goes with the width W = size[1], y (the row) with H = size[0]"
_SWAP_XY = "x and y are swapped: the last dimension must hold (x, y) = (column, row), x first"
_ONE_SIDE = "both axes use the same side: x is normalised with W = size[1] and y with H = size[0] (here H != W)"


# --------------------------------------------------------------------------- exercise 1: pixel_to_norm
def _pixel_to_norm_case(fn, xy_pix, size, align_corners, *, atol):
    """Compare fn(xy_pix) with torch's answer (and hints) for one input."""
    dtype = xy_pix.dtype
    offset, step = _axis_maps(size, align_corners)
    expected = (offset + xy_pix.double() * step).to(dtype)
    off_o, step_o = _axis_maps(size, not align_corners)
    off_s, step_s = _axis_maps(size[::-1], align_corners)
    mistakes = [
        (_other_to_norm(align_corners), off_o + xy_pix.double() * step_o),
        (_SWAP_HW, off_s + xy_pix.double() * step_s),
        (_SWAP_XY, expected.flip(-1)),
    ]
    if not align_corners:
        wh = torch.tensor([size[1], size[0]], dtype=torch.float64)
        mistakes.append(
            (
                "2 * x_pix / W - 1 puts -1 at the centre of the first pixel; with align_corners=False -1 is its "
                "outer edge, half a pixel further out: x = (2 * x_pix + 1) / W - 1",
                2 * xy_pix.double() / wh - 1,
            )
        )
    for side in size:  # both axes normalised with the same side
        off_1, step_1 = _axis_maps((side, side), align_corners)
        mistakes.append((_ONE_SIDE, off_1 + xy_pix.double() * step_1))
    if dtype == torch.float64:
        mistakes.append((_float32_accurate("xy_pix"), expected.float().double()))
    on = f"xy_pix of shape {tuple(xy_pix.shape)} ({dtype}), size={tuple(size)}, align_corners={align_corners}"
    got = _call(fn, xy_pix.clone(), size=size, align_corners=align_corners, name="pixel_to_norm", on=on)
    _compare(got, expected, fn="pixel_to_norm", on=on, atol=atol, mistakes=mistakes, dtype=dtype)


def check_pixel_to_norm(fn) -> None:
    """Visible check of ``pixel_to_norm(xy_pix, *, size, align_corners)``.

    Every pixel centre of a 2x3 image must land where ``F.affine_grid`` puts it, for both
    ``align_corners``; then a few points outside the image of a 4x6 one, and float64 points on a 40x60
    one (the dtype and its accuracy kept).
    """
    for align_corners in (False, True):
        _pixel_to_norm_case(fn, _pixel_centres(2, 3), (2, 3), align_corners, atol=1e-5)
    beyond = torch.tensor([[-1.0, -0.5], [6.0, 4.0], [2.5, -3.0]])
    for align_corners in (False, True):
        _pixel_to_norm_case(fn, beyond, (4, 6), align_corners, atol=1e-5)
    for align_corners in (False, True):  # float64 in, float64 out, to float64 accuracy
        _pixel_to_norm_case(fn, beyond.double() * 10.3, (40, 60), align_corners, atol=_ATOL[torch.float64])
    passed("pixel_to_norm: pixel centres of a 2x3 image and points outside a 4x6 one, both align_corners; float64 kept")


def grade_pixel_to_norm(fn) -> None:
    """Hidden tests: all pixel centres and random points (also far outside), batches, float32/float64."""
    gen = torch.Generator().manual_seed(20201)
    for dtype in (torch.float32, torch.float64):
        for size in ((5, 9), (12, 7)):
            for align_corners in (False, True):
                _pixel_to_norm_case(fn, _pixel_centres(*size, dtype=dtype), size, align_corners, atol=_ATOL[dtype])
                scale = torch.tensor([size[1], size[0]], dtype=dtype)
                pts = (torch.rand(3, 4, 2, generator=gen, dtype=dtype) * 3 - 1) * scale
                _pixel_to_norm_case(fn, pts, size, align_corners, atol=_ATOL[dtype])
    print("pixel_to_norm: hidden tests passed")


# --------------------------------------------------------------------------- exercise 2: norm_to_pixel
def _norm_to_pixel_case(fn, xy_norm, size, align_corners, *, atol, expected=None):
    dtype = xy_norm.dtype
    height, width = size
    offset, step = _axis_maps(size, align_corners)
    x = xy_norm.double()
    if expected is None:
        expected = ((x - offset) / step).to(dtype)
    off_o, step_o = _axis_maps(size, not align_corners)
    off_s, step_s = _axis_maps(size[::-1], align_corners)
    wh = torch.tensor([width, height], dtype=torch.float64)
    mistakes = [
        (_other(align_corners), (x - off_o) / step_o),
        (_SWAP_HW, (x - off_s) / step_s),
        (_SWAP_XY, expected.flip(-1)),
        (
            (
                "(x + 1) / 2 * W stretches [-1, 1] over W pixels; with align_corners=True -1 and +1 are the centres "
                "of the first and the last pixel, 0 and W - 1, so x_pix = (x + 1) / 2 * (W - 1)"
            )
            if align_corners
            else (
                "(x + 1) / 2 * W measures from the outer edge of the first pixel; pixel centres sit at 0, 1, 2, ..., "
                "so subtract 1/2 (align_corners=False: x_pix = ((x + 1) * W - 1) / 2)"
            ),
            (x + 1) / 2 * wh,
        ),
    ]
    for side in size:  # both axes converted with the same side
        off_1, step_1 = _axis_maps((side, side), align_corners)
        mistakes.append((_ONE_SIDE, (x - off_1) / step_1))
    if dtype == torch.float64:
        mistakes.append((_float32_accurate("xy_norm"), expected.float().double()))
    on = f"xy_norm of shape {tuple(xy_norm.shape)} ({dtype}), size={tuple(size)}, align_corners={align_corners}"
    got = _call(fn, xy_norm.clone(), size=size, align_corners=align_corners, name="norm_to_pixel", on=on)
    _compare(got, expected, fn="norm_to_pixel", on=on, atol=atol, mistakes=mistakes, dtype=dtype)


def check_norm_to_pixel(fn) -> None:
    """Visible check of ``norm_to_pixel(xy_norm, *, size, align_corners)``.

    torch's identity grid of a 2x3 image (the pixel centres in normalised coordinates) must come
    back as the integer pixel coordinates; then -1, +1 and points outside the image of a 4x6 one, and
    float64 points on a 40x60 one (the dtype and its accuracy kept).
    """
    for align_corners in (False, True):
        grid = _identity_grid(2, 3, align_corners, torch.float32)
        _norm_to_pixel_case(fn, grid, (2, 3), align_corners, atol=1e-5, expected=_pixel_centres(2, 3))
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.5, 0.25], [2.0, -3.0]])
    for align_corners in (False, True):
        _norm_to_pixel_case(fn, corners, (4, 6), align_corners, atol=1e-5)
    for align_corners in (False, True):  # float64 in, float64 out, to float64 accuracy
        _norm_to_pixel_case(fn, corners.double() * 0.37, (40, 60), align_corners, atol=_ATOL[torch.float64] * 10)
    passed(
        "norm_to_pixel: torch's grid of a 2x3 image back to pixel centres, and -1/+1/outside for 4x6, "
        "both align_corners; float64 kept"
    )


def grade_norm_to_pixel(fn) -> None:
    """Hidden tests: torch's identity grids back to pixel centres, random points (also outside), float32/float64."""
    gen = torch.Generator().manual_seed(20202)
    for dtype in (torch.float32, torch.float64):
        for size in ((7, 4), (6, 11)):
            for align_corners in (False, True):
                grid = _identity_grid(*size, align_corners, dtype)
                _norm_to_pixel_case(
                    fn, grid, size, align_corners, atol=_ATOL[dtype] * 10, expected=_pixel_centres(*size, dtype=dtype)
                )
                pts = torch.rand(2, 5, 2, generator=gen, dtype=dtype) * 6 - 3
                _norm_to_pixel_case(fn, pts, size, align_corners, atol=_ATOL[dtype] * 10)
    print("norm_to_pixel: hidden tests passed")


# --------------------------------------------------------------------------- exercise 3: theta_shift_pixels
def _shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(H, W) image with its content moved dx columns right and dy rows down, zeros coming in."""
    height, width = image.shape
    out = torch.zeros_like(image)
    src = image[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def _theta_shift_case(fn, dx, dy, size, align_corners, *, image_check: bool):
    height, width = size
    offset, step = _axis_maps(size, align_corners, torch.float32)
    expected = torch.tensor([[1.0, 0.0, -dx * float(step[0])], [0.0, 1.0, -dy * float(step[1])]])
    _, step_o = _axis_maps(size, not align_corners, torch.float32)
    _, step_s = _axis_maps(size[::-1], align_corners, torch.float32)

    def theta_with(tx, ty):
        return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty]])

    mistakes = [
        (
            "the content moves the wrong way: theta maps each OUTPUT pixel to where it reads in the INPUT, so to move "
            "the content right by dx, every output pixel must read dx pixels to its LEFT (tx < 0)",
            theta_with(dx * float(step[0]), dy * float(step[1])),
        ),
        (
            f"the direction is right, but the pixel size is that of align_corners={not align_corners}: with "
            f"align_corners={align_corners} one pixel is "
            + ("2/(W-1)" if align_corners else "2/W")
            + f" = {float(step[0]):.4g} normalised units across here (and "
            + ("2/(H-1)" if align_corners else "2/H")
            + " down)",
            theta_with(-dx * float(step_o[0]), -dy * float(step_o[1])),
        ),
        (_SWAP_HW, theta_with(-dx * float(step_s[0]), -dy * float(step_s[1]))),
        (
            "theta is in normalised units, not pixels: one pixel is 2/W (align_corners=False) or 2/(W-1) "
            "(align_corners=True) across",
            theta_with(-dx, -dy),
        ),
        (
            "the translation sits in the last column of theta: [[1, 0, tx], [0, 1, ty]]",
            torch.tensor([[1.0, 0.0], [0.0, 1.0], [-dx * float(step[0]), -dy * float(step[1])]]),
        ),
    ]
    on = f"dx_pix={dx}, dy_pix={dy}, size={tuple(size)}, align_corners={align_corners}"
    theta = _call(fn, dx, dy, size=size, align_corners=align_corners, name="theta_shift_pixels", on=on)
    if not isinstance(theta, torch.Tensor):
        raise CheckFailed(f"theta_shift_pixels on {on}: expected a torch.Tensor, got {type(theta).__name__}")
    if image_check and tuple(theta.shape) == (2, 3):
        image = torch.arange(1.0, height * width + 1).reshape(height, width)
        want = _shifted(image, int(dx), int(dy))
        grid = F.affine_grid(theta.detach().float()[None], (1, 1, height, width), align_corners=align_corners)
        got_img = F.grid_sample(image[None, None], grid, align_corners=align_corners)[0, 0]
        _compare(
            got_img,
            want,
            fn="theta_shift_pixels",
            on=on + f" (the {height}x{width} image 1, 2, 3, ... warped with your theta by F.grid_sample)",
            atol=1e-3,
            mistakes=mistakes,
            diagnose=theta,
        )
    _compare(theta, expected, fn="theta_shift_pixels", on=on, atol=1e-5, mistakes=mistakes)


def check_theta_shift_pixels(fn) -> None:
    """Visible check of ``theta_shift_pixels(dx_pix, dy_pix, *, size, align_corners)``.

    The theta, used with ``F.affine_grid`` + ``F.grid_sample``, must move a small image by whole
    pixels (zeros come in), and equal torch's pixel step times the shift, with a minus sign.
    """
    for align_corners in (False, True):
        _theta_shift_case(fn, 2, 1, (4, 6), align_corners, image_check=True)
        _theta_shift_case(fn, -1, 2, (5, 3), align_corners, image_check=True)
    passed("theta_shift_pixels: whole-pixel shifts of a 4x6 and a 5x3 image, both align_corners")


def grade_theta_shift_pixels(fn) -> None:
    """Hidden tests: whole-pixel shifts on other non-square sizes, fractional shifts (theta only)."""
    gen = torch.Generator().manual_seed(20203)
    for size in ((7, 10), (9, 4)):
        for align_corners in (False, True):
            _theta_shift_case(fn, 3, -2, size, align_corners, image_check=True)
            _theta_shift_case(fn, 0, 1, size, align_corners, image_check=True)
            dx, dy = (torch.rand(2, generator=gen) * 8 - 4).tolist()
            _theta_shift_case(fn, dx, dy, size, align_corners, image_check=False)
    print("theta_shift_pixels: hidden tests passed")


# --------------------------------------------------------------------------- exercise 4: base_grid
def _base_grid_case(fn, height, width, align_corners):
    grid = _identity_grid(height, width, align_corners, torch.float32)
    ones = torch.ones(height, width, 1)
    expected = torch.cat([grid, ones], dim=-1)
    other = torch.cat([_identity_grid(height, width, not align_corners, torch.float32), ones], dim=-1)
    mistakes = [
        (_other_centres(align_corners), other),
        ("x and y are swapped: each entry must be (x, y, 1) with x the column", torch.cat([grid.flip(-1), ones], -1)),
        (
            "the grid has shape (W, H, 3): rows come first, base[i, j] belongs to row i, column j "
            "(torch.meshgrid(ys, xs, indexing='ij'))",
            (width, height, 3),
        ),
        (
            "each point needs a third entry 1 (homogeneous coordinates), so that theta's last column adds the "
            "translation",
            (height, width, 2),
        ),
    ]
    on = f"height={height}, width={width}, align_corners={align_corners}"
    got = _call(fn, height=height, width=width, align_corners=align_corners, name="base_grid", on=on)
    _compare(got, expected, fn="base_grid", on=on, atol=1e-5, mistakes=mistakes)


def check_base_grid(fn) -> None:
    """Visible check of ``base_grid(height, width, *, align_corners)``: torch's identity grid plus a column of ones."""
    for align_corners in (False, True):
        _base_grid_case(fn, 2, 3, align_corners)
    passed("base_grid: 2x3, both align_corners, matches F.affine_grid(identity) with a 1 appended")


def grade_base_grid(fn) -> None:
    """Hidden tests: other non-square sizes and a square one, both align_corners."""
    for height, width in ((5, 8), (9, 4), (28, 28)):
        for align_corners in (False, True):
            _base_grid_case(fn, height, width, align_corners)
    print("base_grid: hidden tests passed")


# --------------------------------------------------------------------------- exercise 5: affine_grid_by_hand
def _thetas(n: int, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """n random, clearly asymmetric thetas (N, 2, 3): rotation, unequal scales, shear and translation."""
    return (
        torch.eye(2, 3, dtype=torch.float64) + 0.6 * (torch.rand(n, 2, 3, generator=gen, dtype=torch.float64) - 0.5)
    ).to(dtype)


def _affine_grid_case(fn, theta, size, align_corners, *, atol):
    dtype = theta.dtype
    n, _, height, width = size
    expected = F.affine_grid(theta, size, align_corners=align_corners)
    linear_t = torch.cat([theta[:, :, :2].transpose(1, 2), theta[:, :, 2:]], dim=-1)
    no_shift = torch.cat([theta[:, :, :2], torch.zeros_like(theta[:, :, 2:])], dim=-1)
    mistakes = [
        (_other_centres(align_corners), F.affine_grid(theta, size, align_corners=not align_corners)),
        (
            "theta's 2x2 part is transposed: grid = base @ theta^T means grid[..., k] = sum_m base[..., m] * theta[k, m] "
            "(row k of theta makes output coordinate k)",
            F.affine_grid(linear_t, size, align_corners=align_corners),
        ),
        (_SWAP_XY, expected.flip(-1)),
        (
            "the translation is missing: the base grid needs its third entry 1, multiplied by theta's last column",
            F.affine_grid(no_shift, size, align_corners=align_corners),
        ),
        (
            "the dtype is right but the values are only float32-accurate: build the base grid in theta.dtype "
            "(torch.linspace / torch.arange with dtype=theta.dtype)",
            F.affine_grid(theta.float(), size, align_corners=align_corners).to(dtype),
        ),
        (
            "the grid has shape (N, W, H, 2): size is (N, C, H, W) and the grid is indexed [n, row, column]",
            (n, width, height, 2),
        ),
    ]
    on = (
        f"theta of shape {tuple(theta.shape)} ({dtype}), size={tuple(size)}, align_corners={align_corners}; "
        f"theta[0] = {[[round(v, 3) for v in row] for row in theta[0].tolist()]}"
    )
    got = _call(fn, theta.clone(), size, align_corners=align_corners, name="affine_grid_by_hand", on=on)
    _compare(got, expected, fn="affine_grid_by_hand", on=on, atol=atol, mistakes=mistakes, dtype=dtype)


def check_affine_grid_by_hand(fn) -> None:
    """Visible check of ``affine_grid_by_hand(theta, size, align_corners=False)`` against ``F.affine_grid``.

    One theta (rotation, unequal scale, translation) on a 2x3 output, and a batch of two on a 3x5
    output, both ``align_corners``.
    """
    c, s = 0.8660254, 0.5  # cos and sin of 30 degrees
    one = torch.tensor([[[1.2 * c, -0.9 * s, 0.2], [1.2 * s, 0.9 * c, -0.1]]])
    two = torch.tensor([[[1.0, 0.3, 0.0], [0.0, 1.0, 0.5]], [[0.5, 0.0, -0.4], [-0.2, 2.0, 0.1]]])
    for align_corners in (False, True):
        _affine_grid_case(fn, one, (1, 1, 2, 3), align_corners, atol=1e-5)
        _affine_grid_case(fn, two, (2, 3, 3, 5), align_corners, atol=1e-5)
    _affine_grid_case(fn, two.double(), (2, 3, 3, 5), False, atol=_ATOL[torch.float64])
    passed(
        "affine_grid_by_hand: one theta on a 2x3 output and a batch of two on 3x5, both align_corners, "
        "float32 and float64"
    )


def grade_affine_grid_by_hand(fn) -> None:
    """Hidden tests: random thetas, B in {1, 4}, H != W and H == W, both align_corners, float32 and float64."""
    gen = torch.Generator().manual_seed(20204)
    for dtype in (torch.float32, torch.float64):
        for n, height, width in ((4, 5, 7), (1, 9, 4), (3, 28, 28)):
            for align_corners in (False, True):
                theta = _thetas(n, gen, dtype)
                _affine_grid_case(fn, theta, (n, 2, height, width), align_corners, atol=_ATOL[dtype])
    print("affine_grid_by_hand: hidden tests passed")


def _affine_grid_grad_case(fn, theta, size, align_corners, gen):
    """float64 values and the gradient of a weighted sum of the grid with respect to theta."""
    weights = torch.randn(*size[:1], *size[2:], 2, generator=gen, dtype=theta.dtype)
    ref_theta = theta.clone().requires_grad_(True)
    expected_grid = F.affine_grid(ref_theta, size, align_corners=align_corners)
    (expected_grid * weights).sum().backward()
    expected_grad = ref_theta.grad
    on = f"theta of shape {tuple(theta.shape)} ({theta.dtype}), size={tuple(size)}, align_corners={align_corners}"
    atol = _ATOL[theta.dtype]
    _affine_grid_case(fn, theta, size, align_corners, atol=atol)
    mine = theta.clone().requires_grad_(True)
    grid = call_learner(fn, mine, size, align_corners=align_corners, name="affine_grid_by_hand", on=on)
    check_close(grid, expected_grid, fn="affine_grid_by_hand", on=on + ", theta requiring grad", atol=atol)
    if not grid.requires_grad:
        raise CheckFailed(
            f"affine_grid_by_hand on {on}: the grid does not depend on theta through autograd, "
            "so an STN could not learn theta; build it from theta with tensor operations "
            "(no .item(), .tolist(), .detach() or torch.tensor(...) of theta's values)"
        )
    call_learner(
        lambda: (grid * weights).sum().backward(),
        name="affine_grid_by_hand (backward pass through your grid)",
        on=on,
    )
    if mine.grad is None:
        raise CheckFailed(f"affine_grid_by_hand on {on}: no gradient reached theta")
    check_close(
        mine.grad,
        expected_grad,
        fn="affine_grid_by_hand",
        on=on + ", gradient of sum(grid * w) w.r.t. theta",
        atol=1e-6,
    )


def check_affine_grid_by_hand_autograd(fn) -> None:
    """Visible check: float64 theta gives a float64 grid, and the gradient reaching theta equals torch's."""
    gen = torch.Generator().manual_seed(2)
    theta = torch.tensor([[[0.9, -0.4, 0.1], [0.3, 1.1, -0.2]]], dtype=torch.float64)
    for align_corners in (False, True):
        _affine_grid_grad_case(fn, theta, (1, 1, 3, 4), align_corners, gen)
    passed("affine_grid_by_hand: float64 kept, gradient w.r.t. theta matches F.affine_grid's (3x4, both align_corners)")


def grade_affine_grid_by_hand_autograd(fn) -> None:
    """Hidden tests: gradients for random batches, float32 and float64, non-square, both align_corners."""
    gen = torch.Generator().manual_seed(20205)
    for dtype in (torch.float64, torch.float32):
        for n, height, width in ((3, 4, 6), (2, 7, 5)):
            for align_corners in (False, True):
                _affine_grid_grad_case(fn, _thetas(n, gen, dtype), (n, 1, height, width), align_corners, gen)
    print("affine_grid_by_hand (autograd): hidden tests passed")
