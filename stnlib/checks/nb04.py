"""Checks for notebook 04 (the theta explorer): the theta puzzles.

Each puzzle asks for the theta that turns an image into a given view. A check warps a test
image with the learner's theta through torch's own ``F.affine_grid`` / ``F.grid_sample`` (the
oracle) and compares the result with the target view built independently, by slicing,
flipping or turning the image's pixels (no theta involved).

The test images are *index images*: pixel (row r, col c) of an H x W image holds the number
``r * W + c + 1``, so with nearest sampling every output pixel shows which input pixel it read
(0 means a read outside the image). A wrong theta is then reported as "output pixel (row i,
col j) shows input pixel (row r', col c') but should show input pixel (row r, col c)".

Conventions used in the targets (on screen, y down, as the explorer shows them):

- zoom x2 into the centre: the central H/2 x W/2 block, each pixel shown as 2 x 2;
- mirror: left and right swap (output column j shows input column W - 1 - j);
- rotate the image by +90 degrees: a quarter turn *clockwise* on screen, as ``torch.rot90(img,
  k=-1)``: the input's top row becomes the output's right column;
- crop a quadrant: that H/2 x W/2 quarter, each pixel shown as 2 x 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import CheckFailed, _number, _row_around, call_learner, check_raises, passed, reference_ops_blocked

__all__ = [
    "index_image",
    "zoom_centre_view",
    "mirror_view",
    "rotate_90_view",
    "crop_quadrant_view",
    "QUADRANTS",
    "check_theta_zoom_centre",
    "grade_theta_zoom_centre",
    "check_theta_mirror",
    "grade_theta_mirror",
    "check_theta_rotate_90",
    "grade_theta_rotate_90",
    "check_theta_crop_quadrant",
    "grade_theta_crop_quadrant",
]

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")

_REMINDER = "Remember: theta says where each OUTPUT pixel reads in the INPUT (output -> input)."


# --------------------------------------------------------------------------- target views (no theta)
def index_image(height: int, width: int, *, dtype=torch.float64) -> torch.Tensor:
    """(H, W) image whose pixel (r, c) holds r * W + c + 1 (so 0 can mean "read outside").

    Example:
        >>> index_image(2, 3)
        tensor([[1., 2., 3.],
                [4., 5., 6.]], dtype=torch.float64)
    """
    return torch.arange(1, height * width + 1, dtype=dtype).reshape(height, width)


def _doubled(block: torch.Tensor) -> torch.Tensor:
    return block.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def zoom_centre_view(image: torch.Tensor) -> torch.Tensor:
    """The central H/2 x W/2 block of ``image`` (..., H, W), each pixel doubled; H, W multiples of 4."""
    height, width = image.shape[-2:]
    return _doubled(image[..., height // 4 : 3 * height // 4, width // 4 : 3 * width // 4])


def mirror_view(image: torch.Tensor) -> torch.Tensor:
    """``image`` (..., H, W) with left and right swapped."""
    return torch.flip(image, dims=(-1,))


def rotate_90_view(image: torch.Tensor) -> torch.Tensor:
    """``image`` (..., H, W) turned a quarter turn clockwise on screen; shape (..., W, H)."""
    return torch.rot90(image, k=-1, dims=(-2, -1))


def crop_quadrant_view(image: torch.Tensor, quadrant: str) -> torch.Tensor:
    """The named quarter of ``image`` (..., H, W), each pixel doubled; H and W even.

    ``quadrant`` is one of :data:`QUADRANTS`; "top" means rows 0 .. H/2 - 1 (y down).
    """
    height, width = image.shape[-2:]
    rows = slice(0, height // 2) if quadrant.startswith("top") else slice(height // 2, height)
    cols = slice(0, width // 2) if quadrant.endswith("left") else slice(width // 2, width)
    return _doubled(image[..., rows, cols])


# --------------------------------------------------------------------------- warping and comparing
def _call(fn, *args, name: str) -> torch.Tensor:
    """Call the learner's function with the reference ops blocked; check it returned a (2, 3) theta.

    An error inside it becomes a :class:`CheckFailed` naming the argument (:func:`call_learner`).
    """
    on = f"quadrant={args[0]!r}" if args else "no arguments (it returns a fixed theta)"
    theta = call_learner(fn, *args, name=name, on=on)
    shown = f"{name}({', '.join(repr(a) for a in args)})"
    if not isinstance(theta, torch.Tensor):
        raise CheckFailed(f"{shown}: expected a torch.Tensor of shape (2, 3), got {type(theta).__name__}")
    if tuple(theta.shape) != (2, 3):
        raise CheckFailed(f"{shown}: expected a theta of shape (2, 3), got shape {tuple(theta.shape)}")
    if not theta.is_floating_point():
        raise CheckFailed(f"{shown}: expected a floating-point theta (e.g. float32), got {theta.dtype}")
    if not torch.isfinite(theta).all():
        raise CheckFailed(f"{shown}: theta holds inf or nan: {theta.tolist()}")
    return theta.detach()


def _warp(image: torch.Tensor, theta: torch.Tensor, out_hw, *, mode: str, align_corners: bool) -> torch.Tensor:
    """torch's affine_grid + grid_sample (zeros padding) of ``image`` (H, W) -> (H_out, W_out)."""
    theta = theta.to(image.dtype).reshape(1, 2, 3)
    grid = F.affine_grid(theta, (1, 1, *out_hw), align_corners=align_corners)
    return F.grid_sample(image[None, None], grid, mode=mode, padding_mode="zeros", align_corners=align_corners)[0, 0]


def _pixel(value: float, width: int) -> str:
    """What an output pixel of a warped index image shows: an input pixel, the padding, or a blend."""
    if abs(value - round(value)) > 1e-3:  # bilinear sampling between pixels (or a pixel and the padding)
        return f"{_number(value)}, a blend of neighbouring input pixels (or of a pixel and the padding),"
    index = int(round(value)) - 1
    if index < 0:
        return "padding (a read outside the input)"
    return f"input pixel (row {index // width}, col {index % width})"


def _theta_text(theta: torch.Tensor) -> str:
    rows = ", ".join("[" + ", ".join(f"{v + 0.0:.3g}" for v in row) + "]" for row in theta.tolist())
    return f"[{rows}]"  # + 0.0: a -0 (e.g. from -torch.eye(2, 3)) reads like a sign that matters


def _compare(
    got: torch.Tensor,
    expected: torch.Tensor,
    *,
    shown: str,
    on: str,
    width: int,
    index: bool,
    theta: torch.Tensor,
    atol: float = 1e-4,
) -> None:
    """Raise CheckFailed if the warped view differs from the target, naming the first wrong pixel.

    The message previews the output row that holds it (as :func:`~stnlib.checks.common.check_close` does).
    """
    bad = (got - expected).abs() > atol
    if not bad.any():
        return
    i, j = (int(v) for v in torch.nonzero(bad)[0])
    count, total = int(bad.sum()), bad.numel()
    if index:
        detail = (
            f"output pixel (row {i}, col {j}) shows {_pixel(float(got[i, j]), width)} "
            f"but should show {_pixel(float(expected[i, j]), width)}"
        )
    else:
        detail = (
            f"output pixel (row {i}, col {j}) is {_number(float(got[i, j]))}, expected {_number(float(expected[i, j]))}"
        )
    label, expected_row = _row_around(expected, (i, j))
    _, got_row = _row_around(got, (i, j))
    raise CheckFailed(
        f"{shown} on {on}: {detail}; {count} of {total} output pixels differ.\n"
        f"  expected{label} {expected_row}\n  got{label}      {got_row}\n"
        f"  Your theta: {_theta_text(theta)}."
    )


def _inverse(theta: torch.Tensor) -> torch.Tensor | None:
    """The theta of the inverse map, or None when theta's 2x2 part is singular."""
    matrix = torch.cat([theta.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    if abs(float(torch.linalg.det(matrix))) < 1e-9:
        return None
    return torch.linalg.inv(matrix)[:2]


def _on(height: int, width: int, out_hw, *, mode: str, align_corners: bool, index: bool, dtype) -> str:
    kind = "index image (each pixel holds its own number)" if index else "random image"
    size = f"{height}x{width} {kind}"
    if tuple(out_hw) != (height, width):
        size += f", output {out_hw[0]}x{out_hw[1]}"
    return f"a {size}, mode={mode!r}, align_corners={align_corners}, {str(dtype).replace('torch.', '')}"


def _check_view(
    theta,
    view_fn,
    *,
    shown: str,
    height: int,
    width: int,
    mode: str,
    align_corners: bool,
    index: bool = True,
    dtype=torch.float64,
    generator=None,
) -> None:
    """Warp a test image with ``theta`` (torch's ops) and compare with ``view_fn(image)``."""
    if index:
        image = index_image(height, width, dtype=dtype)
    else:
        image = torch.rand(height, width, generator=generator, dtype=torch.float64).to(dtype)
    expected = view_fn(image)
    got = _warp(image, theta, tuple(expected.shape), mode=mode, align_corners=align_corners)
    on = _on(height, width, tuple(expected.shape), mode=mode, align_corners=align_corners, index=index, dtype=dtype)
    atol = 1e-4 if dtype == torch.float64 else 1e-3
    try:
        _compare(
            got.to(torch.float64),
            expected.to(torch.float64),
            shown=shown,
            on=on,
            width=width,
            index=index,
            theta=theta,
            atol=atol,
        )
    except CheckFailed as err:
        # The usual slip, input -> output thinking, gives the inverse of the right theta: say so only then.
        inverse = _inverse(theta)
        if inverse is not None:
            undone = _warp(image, inverse, tuple(expected.shape), mode=mode, align_corners=align_corners)
            if ((undone.to(torch.float64) - expected.to(torch.float64)).abs() <= atol).all():
                raise CheckFailed(
                    f"{err}\n  Hint: the inverse of your theta gives this view: your theta maps the input to the "
                    f"output. {_REMINDER}"
                ) from None
        raise


# --------------------------------------------------------------------------- Exercise 1: zoom x2 into the centre
def check_theta_zoom_centre(fn) -> None:
    """Visible check: ``fn()`` gives a (2, 3) theta that shows the centre of an 8x12 image zoomed x2."""
    theta = _call(fn, name="theta_zoom_centre")
    _check_view(
        theta, zoom_centre_view, shown="theta_zoom_centre()", height=8, width=12, mode="nearest", align_corners=False
    )
    passed("theta_zoom_centre: shows the central 4x6 block of an 8x12 index image, each pixel doubled")


def grade_theta_zoom_centre(fn) -> None:
    """Hidden tests: other sizes (square and not), both align_corners, float32 and float64."""
    theta = _call(fn, name="theta_zoom_centre")
    for (height, width), align_corners, dtype in [
        ((12, 8), True, torch.float64),
        ((16, 16), False, torch.float32),
        ((20, 28), True, torch.float32),
        ((28, 28), False, torch.float64),
    ]:
        _check_view(
            theta,
            zoom_centre_view,
            shown="theta_zoom_centre()",
            height=height,
            width=width,
            mode="nearest",
            align_corners=align_corners,
            dtype=dtype,
        )
    print("theta_zoom_centre: hidden tests passed")


# --------------------------------------------------------------------------- Exercise 2: mirror
def check_theta_mirror(fn) -> None:
    """Visible check: ``fn()`` swaps left and right of a 5x6 image (nearest and bilinear)."""
    theta = _call(fn, name="theta_mirror")
    for mode in ("nearest", "bilinear"):
        _check_view(theta, mirror_view, shown="theta_mirror()", height=5, width=6, mode=mode, align_corners=False)
    passed("theta_mirror: output column j shows input column W-1-j (5x6 index image)")


def grade_theta_mirror(fn) -> None:
    """Hidden tests: random images of other sizes, both align_corners, float32 and float64."""
    theta = _call(fn, name="theta_mirror")
    g = torch.Generator().manual_seed(404)
    for (height, width), align_corners, dtype in [
        ((7, 4), True, torch.float64),
        ((9, 13), False, torch.float32),
        ((28, 28), True, torch.float32),
    ]:
        _check_view(
            theta,
            mirror_view,
            shown="theta_mirror()",
            height=height,
            width=width,
            mode="bilinear",
            align_corners=align_corners,
            index=False,
            dtype=dtype,
            generator=g,
        )
        _check_view(
            theta,
            mirror_view,
            shown="theta_mirror()",
            height=height,
            width=width,
            mode="nearest",
            align_corners=align_corners,
            dtype=dtype,
        )
    print("theta_mirror: hidden tests passed")


# --------------------------------------------------------------------------- Exercise 3: rotate by +90 degrees
def check_theta_rotate_90(fn) -> None:
    """Visible check: ``fn()`` turns a 6x6 image a quarter turn clockwise on screen."""
    theta = _call(fn, name="theta_rotate_90")
    for mode in ("nearest", "bilinear"):
        _check_view(theta, rotate_90_view, shown="theta_rotate_90()", height=6, width=6, mode=mode, align_corners=False)
    passed("theta_rotate_90: the input's top row became the output's right column (6x6 index image)")


def grade_theta_rotate_90(fn) -> None:
    """Hidden tests: non-square images (output W x H), both align_corners, float32 and float64."""
    theta = _call(fn, name="theta_rotate_90")
    g = torch.Generator().manual_seed(4090)
    for (height, width), align_corners, dtype in [
        ((5, 8), False, torch.float64),
        ((8, 5), True, torch.float32),
        ((28, 28), True, torch.float64),
    ]:
        _check_view(
            theta,
            rotate_90_view,
            shown="theta_rotate_90()",
            height=height,
            width=width,
            mode="nearest",
            align_corners=align_corners,
            dtype=dtype,
        )
        _check_view(
            theta,
            rotate_90_view,
            shown="theta_rotate_90()",
            height=height,
            width=width,
            mode="bilinear",
            align_corners=align_corners,
            index=False,
            dtype=dtype,
            generator=g,
        )
    print("theta_rotate_90: hidden tests passed")


# --------------------------------------------------------------------------- Exercise 4: crop a quadrant
def check_theta_crop_quadrant(fn) -> None:
    """Visible check: ``fn("top-right")`` and ``fn("bottom-left")`` on an 8x12 image; a bad name raises."""
    for quadrant in ("top-right", "bottom-left"):
        theta = _call(fn, quadrant, name="theta_crop_quadrant")
        _check_view(
            theta,
            lambda img, q=quadrant: crop_quadrant_view(img, q),
            shown=f"theta_crop_quadrant({quadrant!r})",
            height=8,
            width=12,
            mode="nearest",
            align_corners=False,
        )
    with reference_ops_blocked():
        check_raises(lambda: fn("centre"), ValueError, fn="theta_crop_quadrant", on="quadrant='centre'")
    passed(
        "theta_crop_quadrant: 'top-right' and 'bottom-left' of an 8x12 index image, each pixel doubled; "
        "'centre' raises ValueError"
    )


def grade_theta_crop_quadrant(fn) -> None:
    """Hidden tests: all four quadrants, other sizes, float32 and float64 (align_corners=False)."""
    for quadrant in QUADRANTS:
        theta = _call(fn, quadrant, name="theta_crop_quadrant")
        for (height, width), dtype in [((6, 10), torch.float64), ((28, 28), torch.float32), ((14, 4), torch.float64)]:
            _check_view(
                theta,
                lambda img, q=quadrant: crop_quadrant_view(img, q),
                shown=f"theta_crop_quadrant({quadrant!r})",
                height=height,
                width=width,
                mode="nearest",
                align_corners=False,
                dtype=dtype,
            )
    with reference_ops_blocked():
        check_raises(lambda: fn("top"), ValueError, fn="theta_crop_quadrant", on="quadrant='top'")
    print("theta_crop_quadrant: hidden tests passed")
