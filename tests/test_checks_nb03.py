"""The checks of notebook 03 (stnlib.checks.nb03): they pass on the solutions, fail on typical mistakes
with a message that helps, and refuse solutions that delegate to torch's or stnlib's sampler."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from nbutils import SOLUTIONS, answer_namespace
from torch.nn.functional import grid_sample as aliased_grid_sample

from stnlib import sampling
from stnlib.checks import CheckFailed, nb03

NOTEBOOK = SOLUTIONS / "03_bilinear_sampling" / "03_bilinear_sampling.ipynb"


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(NOTEBOOK)


# (check, grade, function name, extra arguments)
CHECKS = [
    (nb03.check_nearest_one, nb03.grade_nearest_one, "nearest_one", ()),
    (nb03.check_bilinear_one, nb03.grade_bilinear_one, "bilinear_one", ()),
    (nb03.check_bilinear_sample, nb03.grade_bilinear_sample, "bilinear_sample", ()),
    (nb03.check_bilinear_sample_gradients, nb03.grade_bilinear_sample_gradients, "bilinear_sample", ()),
    (nb03.check_pad_coords, nb03.grade_pad_coords, "pad_coords", ("border",)),
    (nb03.check_pad_coords, nb03.grade_pad_coords, "pad_coords", ("reflection",)),
    (nb03.check_bilinear_grad_one, nb03.grade_bilinear_grad_one, "bilinear_grad_one", ()),
]
IDS = [f"{c[0].__name__}{'-' + c[3][0] if c[3] else ''}" for c in CHECKS]


@pytest.mark.parametrize("check, grade, name, extra", CHECKS, ids=IDS)
def test_solution_passes(ns, check, grade, name, extra, capsys):
    check(ns[name], *extra)
    grade(ns[name], *extra)
    assert "OK:" in capsys.readouterr().out


@pytest.mark.parametrize("check, grade, name, extra", CHECKS, ids=IDS)
def test_stub_raises_not_implemented(check, grade, name, extra):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check(stub, *extra)
    with pytest.raises(NotImplementedError):
        grade(stub, *extra)


def test_every_check_has_a_grade():
    names = set(nb03.__all__)
    for name in names:
        if name.startswith("check_"):
            assert "grade_" + name[len("check_") :] in names


# --------------------------------------------------------------------------- exercise 1: nearest_one
def nearest_swapped(image, x_pix, y_pix):
    col, row = round(x_pix), round(y_pix)
    if 0 <= col < image.shape[1] and 0 <= row < image.shape[0]:
        return image[col, row]  # row and column swapped
    return torch.zeros((), dtype=image.dtype)


def nearest_floor(image, x_pix, y_pix):
    col, row = math.floor(x_pix), math.floor(y_pix)  # floor instead of round
    if 0 <= col < image.shape[1] and 0 <= row < image.shape[0]:
        return image[row, col]
    return torch.zeros((), dtype=image.dtype)


def nearest_clamped(image, x_pix, y_pix):
    col = min(max(round(x_pix), 0), image.shape[1] - 1)  # border padding instead of zeros
    row = min(max(round(y_pix), 0), image.shape[0] - 1)
    return image[row, col]


def nearest_unchecked(image, x_pix, y_pix):
    return image[round(y_pix), round(x_pix)]  # no check at all: IndexError far out, wrap-around at -1


@pytest.mark.parametrize(
    "fn, match",
    [
        (nearest_swapped, "Hint: x is the column"),
        (nearest_floor, "Hint: round to the nearest pixel"),
        (nearest_clamped, "Hint: a point whose nearest pixel lies outside the image reads 0"),
        (nearest_unchecked, "nearest_one on the 3x4 image"),
    ],
)
def test_nearest_one_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb03.check_nearest_one(fn)
    with pytest.raises(CheckFailed):
        nb03.grade_nearest_one(fn)


def test_nearest_one_index_error_is_reported():
    def nearest_no_zero(image, x_pix, y_pix):
        col, row = round(x_pix), round(y_pix)
        return image[row, col] if col >= 0 and row >= 0 else torch.zeros(())

    with pytest.raises(CheckFailed, match="raised IndexError"):
        nb03.check_nearest_one(nearest_no_zero)


# --------------------------------------------------------------------------- exercise 2: bilinear_one
def _bilinear(image, x_pix, y_pix, *, swap_weights=False, clamp=False, swap_xy=False):
    height, width = image.shape
    x0, y0 = math.floor(x_pix), math.floor(y_pix)
    a, b = x_pix - x0, y_pix - y0
    if swap_weights:
        a, b = 1 - a, 1 - b
    value = torch.zeros((), dtype=image.dtype)
    for col, row, w in (
        (x0, y0, (1 - a) * (1 - b)),
        (x0 + 1, y0, a * (1 - b)),
        (x0, y0 + 1, (1 - a) * b),
        (x0 + 1, y0 + 1, a * b),
    ):
        if clamp:
            col, row = min(max(col, 0), width - 1), min(max(row, 0), height - 1)
        if 0 <= col < width and 0 <= row < height:
            value = value + w * (image[col, row] if swap_xy else image[row, col])
    return value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"swap_weights": True}, "weights swapped"),
        ({"clamp": True}, "a neighbour outside the image counts as 0"),
        ({"swap_xy": True}, "x is the column and y the row"),
    ],
)
def test_bilinear_one_mistakes(kwargs, match):
    def fn(image, x_pix, y_pix):
        return _bilinear(image, x_pix, y_pix, **kwargs)

    with pytest.raises(CheckFailed, match=match):
        nb03.check_bilinear_one(fn)
    with pytest.raises(CheckFailed):
        nb03.grade_bilinear_one(fn)


# --------------------------------------------------------------------------- exercise 3: bilinear_sample
def _sample(
    input, grid, align_corners=False, *, formula=None, clamp=False, swap_xy=False, detach=False, transposed=False
):
    n, c, height, width = input.shape
    _, h_out, w_out, _ = grid.shape
    x, y = grid[..., 0].reshape(n, -1), grid[..., 1].reshape(n, -1)
    if swap_xy:
        x, y = y, x
    corners = align_corners if formula is None else formula
    if corners:
        x, y = (x + 1) / 2 * (width - 1), (y + 1) / 2 * (height - 1)
    else:
        x, y = ((x + 1) * width - 1) / 2, ((y + 1) * height - 1) / 2
    if detach:
        x, y = x.detach(), y.detach()
    x0, y0 = torch.floor(x), torch.floor(y)
    a, b = x - x0, y - y0
    flat = input.reshape(n, c, height * width)
    out = torch.zeros(n, c, x.shape[1], dtype=input.dtype)
    for dx, dy, w in ((0, 0, (1 - a) * (1 - b)), (1, 0, a * (1 - b)), (0, 1, (1 - a) * b), (1, 1, a * b)):
        col, row = x0 + dx, y0 + dy
        inside = (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
        if clamp:
            inside = torch.ones_like(inside)
        if transposed:  # the mistake: pixel (row, col) read at col * H + row
            index = (col.clamp(0, width - 1) * height + row.clamp(0, height - 1)).long()
        else:
            index = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1)).long()
        out = out + flat.gather(2, index[:, None, :].expand(n, c, -1)) * (w * inside)[:, None, :]
    return out.reshape(n, c, h_out, w_out)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"formula": True}, "Hint: this is the result for align_corners=True"),
        ({"formula": False}, "Hint: this is the result for align_corners=False"),
        ({"clamp": True}, "Hint: corners outside the image must count as 0"),
        ({"swap_xy": True}, r"Hint: grid\[\.\.\., 0\] is x"),
        ({"transposed": True}, r"(?s)bilinear_sample \(output\) on .*Hint: .*flat index x \* H \+ y"),
    ],
)
def test_bilinear_sample_mistakes(kwargs, match):
    def fn(input, grid, align_corners=False):
        return _sample(input, grid, align_corners, **kwargs)

    with pytest.raises(CheckFailed, match=match):
        nb03.check_bilinear_sample(fn)
    with pytest.raises(CheckFailed):
        nb03.grade_bilinear_sample(fn)


def test_bilinear_sample_gradient_messages_name_the_quantity():
    """A transposed flat index in the gradient check: the message says output, and the hint the index."""

    def fn(input, grid, align_corners=False):
        return _sample(input, grid, align_corners, transposed=True)

    with pytest.raises(CheckFailed, match=r"(?s)bilinear_sample \(output\) on .*Hint: .*y \* W \+ x"):
        nb03.check_bilinear_sample_gradients(fn)


def test_bilinear_sample_wrong_default():
    """A default of True: the visible check calls it without align_corners too, and the hint names the default."""

    def fn(input, grid, align_corners=True):  # the default must be False, as torch's
        return _sample(input, grid, align_corners)

    with pytest.raises(
        CheckFailed, match=r"(?s)align_corners=default.*Hint: .*called without align_corners.*default False"
    ) as err:
        nb03.check_bilinear_sample(fn)
    assert "check the normalised -> pixel formula" not in str(err.value)
    with pytest.raises(CheckFailed, match="align_corners=default"):
        nb03.grade_bilinear_sample(fn)


def test_bilinear_sample_error_is_wrapped_with_the_input():
    """An error inside bilinear_sample is a CheckFailed naming the input; a dimension out of range is not
    mistaken for a read outside the image."""

    def fn(input, grid, align_corners=False):
        x, y = grid.unbind(4)  # the grid has 4 dimensions: (x, y) is dim 3
        return _sample(input, torch.stack([x, y], -1), align_corners)

    with pytest.raises(CheckFailed, match=r"bilinear_sample on input \(1, 1, 3, 4\).*raised IndexError") as err:
        nb03.check_bilinear_sample(fn)
    assert "points outside the image" not in str(err.value)

    def float_index(input, grid, align_corners=False):
        n, c, height, width = input.shape
        x = ((grid[..., 0] + 1) * width - 1) / 2
        y = ((grid[..., 1] + 1) * height - 1) / 2
        index = (y.floor().clamp(0, height - 1) * width + x.floor().clamp(0, width - 1)).reshape(n, 1, -1)
        return input.reshape(n, c, -1).gather(2, index.expand(n, c, -1))  # the index is still float

    with pytest.raises(CheckFailed, match=r"bilinear_sample on input .*raised RuntimeError: gather"):
        nb03.check_bilinear_sample(float_index)


def test_bilinear_sample_backward_error_is_wrapped():
    def fn(input, grid, align_corners=False):
        out = _sample(input, grid, align_corners)
        one = torch.exp(out * 0.0)  # saved for the backward pass of exp ...
        result = out * one
        one.mul_(1.0)  # ... and changed in place afterwards
        return result

    with pytest.raises(
        CheckFailed, match=r"bilinear_sample \(backward pass through your result\) on input .*raised RuntimeError"
    ):
        nb03.check_bilinear_sample_gradients(fn)


def test_bilinear_sample_detached_grid():
    def fn(input, grid, align_corners=False):
        return _sample(input, grid, align_corners, detach=True)

    nb03.check_bilinear_sample(fn)  # values are right ...
    with pytest.raises(CheckFailed, match="no gradient reached grid"):  # ... but theta would never learn
        nb03.check_bilinear_sample_gradients(fn)
    with pytest.raises(CheckFailed, match="no gradient reached grid"):
        nb03.grade_bilinear_sample_gradients(fn)


def test_bilinear_sample_without_grad():
    def fn(input, grid, align_corners=False):
        with torch.no_grad():
            return _sample(input, grid, align_corners)

    with pytest.raises(CheckFailed, match="does not require grad"):
        nb03.check_bilinear_sample_gradients(fn)


# --------------------------------------------------------------------------- exercise 4: pad_coords
def _pad(coord, size, mode, align_corners, *, high_end=None, mirrors=None, clamp=True, once=False):
    if mode == "zeros":
        return coord
    if mode == "reflection":
        centres = align_corners if mirrors is None else mirrors
        low, high = (0.0, size - 1.0) if centres else (-0.5, size - 0.5)
        if once:
            coord = torch.where(coord < low, 2 * low - coord, torch.where(coord > high, 2 * high - coord, coord))
        else:
            span = high - low
            d = (coord - low).abs()
            folds = torch.floor(d / span)
            rest = d - folds * span
            coord = torch.where(folds % 2 == 0, low + rest, high - rest)
    if not clamp:
        return coord
    return coord.clamp(0, size - 1 if high_end is None else high_end(size))


REFLECTION_HINT = "Hint: this is the reflection for align_corners"


@pytest.mark.parametrize(
    "mode, kwargs, match",
    [
        ("border", {"high_end": lambda size: size}, "Hint: the last pixel is size - 1"),
        ("border", {"clamp": False}, "pad_coords on"),
        ("reflection", {"mirrors": True}, f"(?s)align_corners=False: .*{REFLECTION_HINT}=True"),
        ("reflection", {"mirrors": False}, f"(?s)align_corners=True: .*{REFLECTION_HINT}=False"),
        ("reflection", {"clamp": False}, "Hint: the result must lie in"),
        ("reflection", {"once": True}, "pad_coords on"),
    ],
)
def test_pad_coords_mistakes(mode, kwargs, match):
    def fn(coord_pix, size, padding_mode, align_corners):
        return _pad(coord_pix, size, padding_mode, align_corners, **kwargs)

    with pytest.raises(CheckFailed, match=match):
        nb03.check_pad_coords(fn, mode)
    with pytest.raises(CheckFailed):
        nb03.grade_pad_coords(fn, mode)


def test_pad_coords_zeros_must_not_clamp():
    def fn(coord_pix, size, padding_mode, align_corners):
        return coord_pix.clamp(0, size - 1)  # border for every mode

    with pytest.raises(CheckFailed, match="padding_mode='zeros'"):
        nb03.check_pad_coords(fn, "border")


def test_pad_coords_without_a_mode_checks_both(capsys):
    """check_pad_coords(fn) (as the demo's yours_or_reference calls it) checks border and reflection."""
    nb03.check_pad_coords(lambda c, s, m, a: _pad(c, s, m, a))
    assert capsys.readouterr().out.count("OK: pad_coords") == 2

    def border_only(coord_pix, size, padding_mode, align_corners):
        return _pad(coord_pix, size, "border" if padding_mode != "zeros" else "zeros", align_corners)

    nb03.check_pad_coords(border_only, "border")
    with pytest.raises(CheckFailed, match="reflection"):
        nb03.check_pad_coords(border_only)


def test_pad_coords_rejects_unknown_mode():
    with pytest.raises(ValueError, match="padding_mode must be"):
        nb03.check_pad_coords(lambda *a: a[0], "zeros")


# --------------------------------------------------------------------------- exercise 5: bilinear_grad_one
def test_bilinear_grad_one_mistakes(ns):
    right = ns["bilinear_grad_one"]
    with pytest.raises(CheckFailed, match="Hint: return \\(dV/dx, dV/dy\\) in that order"):
        nb03.check_bilinear_grad_one(lambda image, x, y: right(image, x, y).flip(0))
    with pytest.raises(CheckFailed, match="Hint: eq. 7: the sign"):
        nb03.check_bilinear_grad_one(lambda image, x, y: -right(image, x, y))
    with pytest.raises(CheckFailed):
        nb03.grade_bilinear_grad_one(lambda image, x, y: -right(image, x, y))


def test_bilinear_grad_one_names_the_derivative(ns):
    """The result holds two quantities: the message says which of them is wrong."""
    right = ns["bilinear_grad_one"]

    def wrong_dy(image, x, y):
        grad = right(image, x, y).clone()
        grad[1] = -grad[1]
        return grad

    with pytest.raises(CheckFailed, match=r"at index \(1,\) \(dV/dy_pix\), got"):
        nb03.check_bilinear_grad_one(wrong_dy)

    def wrong_dx(image, x, y):
        return right(image, x, y) * torch.tensor([2.0, 1.0], dtype=image.dtype)

    with pytest.raises(CheckFailed, match=r"at index \(0,\) \(dV/dx_pix\), got"):
        nb03.check_bilinear_grad_one(wrong_dx)


def test_bilinear_grad_one_wrong_shape():
    with pytest.raises(CheckFailed, match=r"expected shape \(2,\), got \(1, 2\)"):
        nb03.check_bilinear_grad_one(lambda image, x, y: torch.zeros(1, 2, dtype=image.dtype))


# --------------------------------------------------------------------------- delegating to the references
def _grid_one(image, x_pix, y_pix):
    height, width = image.shape
    return torch.tensor([[[[2 * x_pix / (width - 1) - 1, 2 * y_pix / (height - 1) - 1]]]], dtype=image.dtype)


def _grad_via_torch(image, x_pix, y_pix):
    g = _grid_one(image, x_pix, y_pix).requires_grad_(True)
    F.grid_sample(image[None, None], g, align_corners=True).sum().backward()
    return g.grad.reshape(2) * torch.tensor([2 / (image.shape[1] - 1), 2 / (image.shape[0] - 1)], dtype=image.dtype)


def _grad_via_stnlib(image, x_pix, y_pix):
    x = torch.tensor([[[x_pix]]], dtype=image.dtype, requires_grad=True)
    y = torch.tensor([[[y_pix]]], dtype=image.dtype, requires_grad=True)
    sampling.BilinearSampleFunction.apply(image[None, None], x, y).sum().backward()
    return torch.stack([x.grad.reshape(()), y.grad.reshape(())])


def _pixels(v):
    return torch.tensor(float(v)).reshape(1, 1, 1)


DELEGATES = [
    (
        nb03.check_nearest_one,
        (),
        lambda im, x, y: F.grid_sample(im[None, None], _grid_one(im, x, y), mode="nearest", align_corners=True)[
            0, 0, 0, 0
        ],
    ),
    (
        nb03.check_nearest_one,
        (),
        lambda im, x, y: sampling.nearest_sample_pixels(im[None, None], _pixels(x), _pixels(y)).reshape(()),
    ),
    (
        nb03.check_bilinear_one,
        (),
        lambda im, x, y: F.grid_sample(im[None, None], _grid_one(im, x, y), align_corners=True)[0, 0, 0, 0],
    ),
    (
        nb03.check_bilinear_one,
        (),
        lambda im, x, y: sampling.bilinear_sample_pixels(im[None, None], _pixels(x), _pixels(y)).reshape(()),
    ),
    (
        nb03.check_bilinear_sample,
        (),
        lambda i, g, align_corners=False: F.grid_sample(i, g, align_corners=align_corners),
    ),
    (
        nb03.check_bilinear_sample,
        (),
        lambda i, g, align_corners=False: aliased_grid_sample(i, g, align_corners=align_corners),
    ),
    (
        nb03.check_bilinear_sample,
        (),
        lambda i, g, align_corners=False: sampling.grid_sample(i, g, align_corners=align_corners),
    ),
    (
        nb03.check_bilinear_sample_gradients,
        (),
        lambda i, g, align_corners=False: F.grid_sample(i, g, align_corners=align_corners),
    ),
    (nb03.check_pad_coords, ("border",), sampling.apply_padding),
    (nb03.check_pad_coords, ("reflection",), sampling.apply_padding),
    (nb03.check_bilinear_grad_one, (), _grad_via_torch),
    (nb03.check_bilinear_grad_one, (), _grad_via_stnlib),
]


@pytest.mark.parametrize("check, extra, fn", DELEGATES, ids=[f"{d[0].__name__}-{i}" for i, d in enumerate(DELEGATES)])
def test_delegating_to_the_reference_fails(check, extra, fn):
    with pytest.raises((RuntimeError, CheckFailed)):
        check(fn, *extra)
    grade = getattr(nb03, check.__name__.replace("check_", "grade_"))
    with pytest.raises((RuntimeError, CheckFailed)):
        grade(fn, *extra)
