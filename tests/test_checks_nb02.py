"""Tests of stnlib/checks/nb02.py: the checks pass on the notebook's solutions and catch typical mistakes.

Each typical mistake below is a small, plausible wrong answer (the align_corners=True formula used for
False, H and W swapped, (y, x) order, a transposed theta, a shift with the wrong sign, ...). The checks
must fail on it, and where the module has a hint for that mistake, the message must name it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from nbutils import SOLUTIONS, answer_namespace

from stnlib import geometry, sampling
from stnlib.checks import CheckFailed, nb02

NAME = "02_normalised_coordinates"


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(SOLUTIONS / NAME / f"{NAME}.ipynb")


# --------------------------------------------------------------------------- the solutions pass
@pytest.mark.parametrize(
    "fn_name, checks",
    [
        ("pixel_to_norm", ["pixel_to_norm"]),
        ("norm_to_pixel", ["norm_to_pixel"]),
        ("theta_shift_pixels", ["theta_shift_pixels"]),
        ("base_grid", ["base_grid"]),
        ("affine_grid_by_hand", ["affine_grid_by_hand", "affine_grid_by_hand_autograd"]),
    ],
)
def test_solution_passes(ns, fn_name, checks, capsys):
    for check in checks:
        getattr(nb02, f"check_{check}")(ns[fn_name])
        getattr(nb02, f"grade_{check}")(ns[fn_name])
    assert "OK:" in capsys.readouterr().out


def test_every_check_has_a_grader():
    checks = {n[len("check_") :] for n in nb02.__all__ if n.startswith("check_")}
    grades = {n[len("grade_") :] for n in nb02.__all__ if n.startswith("grade_")}
    assert checks == grades and len(checks) == 6


# --------------------------------------------------------------------------- typical mistakes
def _norm(x, y, size, align_corners, *, swap=False):
    """Correct per-axis formula; swap=True uses W for y and H for x."""
    height, width = size[::-1] if swap else size
    if align_corners:
        return 2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1
    return (2 * x + 1) / width - 1, (2 * y + 1) / height - 1


def p2n_true_formula_always(xy_pix, *, size, align_corners):
    x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, True)
    return torch.stack([x, y], -1)


def p2n_swapped_hw(xy_pix, *, size, align_corners):
    x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, align_corners, swap=True)
    return torch.stack([x, y], -1)


def p2n_yx_order(xy_pix, *, size, align_corners):
    x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, align_corners)
    return torch.stack([y, x], -1)


def p2n_float32(xy_pix, *, size, align_corners):
    x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, align_corners)
    return torch.stack([x, y], -1).float()


def p2n_stnlib(xy_pix, *, size, align_corners):
    return geometry.pixel_to_normalised(xy_pix, size=size, align_corners=align_corners)


def p2n_width_for_both(xy_pix, *, size, align_corners):
    width = size[1]
    x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], (width, width), align_corners)
    return torch.stack([x, y], -1)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (p2n_true_formula_always, "align_corners=True formula"),
        (p2n_swapped_hw, "H and W are swapped"),
        (p2n_yx_order, "x and y are swapped"),
        (p2n_width_for_both, "both axes use the same side"),
    ],
)
def test_pixel_to_norm_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        nb02.check_pixel_to_norm(wrong)
    with pytest.raises(CheckFailed, match=match):
        nb02.grade_pixel_to_norm(wrong)


def test_pixel_to_norm_dtype_and_delegation():
    """A result cast to float32 fails the visible check already (it has a float64 case), not only the grader."""
    with pytest.raises(CheckFailed, match=r"float64\), size=\(40, 60\).*expected a torch.float64 result"):
        nb02.check_pixel_to_norm(p2n_float32)
    with pytest.raises(CheckFailed, match="expected a torch.float64 result"):
        nb02.grade_pixel_to_norm(p2n_float32)
    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb02.check_pixel_to_norm(p2n_stnlib)


def p2n_float32_constants(xy_pix, *, size, align_corners):
    """The scale made with torch.tensor (float32): the result is float64 by promotion, but float32-accurate."""
    height, width = size
    if align_corners:
        scale = torch.tensor([2 / (width - 1), 2 / (height - 1)])
        return xy_pix * scale - 1
    scale = torch.tensor([2 / width, 2 / height])
    return (xy_pix + 0.5) * scale - 1


def test_pixel_to_norm_float32_constants_fail_visibly():
    with pytest.raises(CheckFailed, match=r"(?s)size=\(40, 60\).*Hint: the dtype is right but the values are only "):
        nb02.check_pixel_to_norm(p2n_float32_constants)


def p2n_true_formula_hint(xy_pix, *, size, align_corners):
    """Right for align_corners=True, the True formula for False too."""
    return p2n_true_formula_always(xy_pix, size=size, align_corners=align_corners)


def test_pixel_to_norm_hint_gives_the_pixel_to_norm_formula():
    """The hint gives x = f(x_pix), the formula pixel_to_norm needs, not the inverse x_pix = ... of norm_to_pixel."""
    with pytest.raises(CheckFailed) as err:
        nb02.check_pixel_to_norm(p2n_true_formula_always)
    text = str(err.value)
    assert "x = (2 * x_pix + 1) / W - 1" in text and "x_pix = " not in text

    def false_formula_always(xy_pix, *, size, align_corners):
        x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, False)
        return torch.stack([x, y], -1)

    with pytest.raises(CheckFailed, match=r"align_corners=False formula.*x = 2 \* x_pix / \(W - 1\) - 1"):
        nb02.check_pixel_to_norm(false_formula_always)


def p2n_no_half_pixel(xy_pix, *, size, align_corners):
    height, width = size
    if align_corners:
        x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, True)
    else:
        x, y = 2 * xy_pix[..., 0] / width - 1, 2 * xy_pix[..., 1] / height - 1
    return torch.stack([x, y], -1)


def test_pixel_to_norm_half_pixel_hint():
    with pytest.raises(CheckFailed, match=r"Hint: 2 \* x_pix / W - 1 .*x = \(2 \* x_pix \+ 1\) / W - 1"):
        nb02.check_pixel_to_norm(p2n_no_half_pixel)


def test_pixel_to_norm_error_is_wrapped_with_the_input():
    """torch.stack(..., dim=2) works for the (H, W, 2) grid but not for a list of points (P, 2)."""

    def stack_dim_2(xy_pix, *, size, align_corners):
        x, y = _norm(xy_pix[..., 0], xy_pix[..., 1], size, align_corners)
        return torch.stack([x, y], dim=2)

    with pytest.raises(CheckFailed, match=r"pixel_to_norm on xy_pix of shape \(3, 2\).*: raised IndexError"):
        nb02.check_pixel_to_norm(stack_dim_2)


def n2p_half_pixel(xy_norm, *, size, align_corners):
    """The off-by-half-pixel mistake for False: (x + 1) / 2 * W."""
    height, width = size
    if align_corners:
        return torch.stack([(xy_norm[..., 0] + 1) / 2 * (width - 1), (xy_norm[..., 1] + 1) / 2 * (height - 1)], -1)
    return torch.stack([(xy_norm[..., 0] + 1) / 2 * width, (xy_norm[..., 1] + 1) / 2 * height], -1)


def n2p_true_formula_always(xy_norm, *, size, align_corners):
    height, width = size
    return torch.stack([(xy_norm[..., 0] + 1) / 2 * (width - 1), (xy_norm[..., 1] + 1) / 2 * (height - 1)], -1)


def n2p_swapped_hw(xy_norm, *, size, align_corners):
    width, height = size
    if align_corners:
        return torch.stack([(xy_norm[..., 0] + 1) / 2 * (width - 1), (xy_norm[..., 1] + 1) / 2 * (height - 1)], -1)
    return torch.stack([((xy_norm[..., 0] + 1) * width - 1) / 2, ((xy_norm[..., 1] + 1) * height - 1) / 2], -1)


def n2p_stnlib(xy_norm, *, size, align_corners):
    return geometry.normalised_to_pixel(xy_norm, size=size, align_corners=align_corners)


def n2p_height_for_both(xy_norm, *, size, align_corners):
    return n2p_swapped_hw(xy_norm, size=(size[0], size[0]), align_corners=align_corners)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (n2p_height_for_both, "both axes use the same side"),
        (n2p_half_pixel, "subtract 1/2"),
        (n2p_true_formula_always, "align_corners=True formula"),
        (n2p_swapped_hw, "H and W are swapped"),
    ],
)
def test_norm_to_pixel_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        nb02.check_norm_to_pixel(wrong)
    with pytest.raises(CheckFailed, match=match):
        nb02.grade_norm_to_pixel(wrong)


def test_norm_to_pixel_delegation():
    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb02.check_norm_to_pixel(n2p_stnlib)


def test_norm_to_pixel_half_pixel_hint_for_align_corners_true():
    """(x + 1) / 2 * W with align_corners=True: the hint gives the True formula, not the False one."""

    def half_pixel_for_true(xy_norm, *, size, align_corners):
        height, width = size
        if not align_corners:
            return torch.stack([((xy_norm[..., 0] + 1) * width - 1) / 2, ((xy_norm[..., 1] + 1) * height - 1) / 2], -1)
        return torch.stack([(xy_norm[..., 0] + 1) / 2 * width, (xy_norm[..., 1] + 1) / 2 * height], -1)

    with pytest.raises(CheckFailed) as err:
        nb02.check_norm_to_pixel(half_pixel_for_true)
    text = str(err.value)
    assert "align_corners=True" in text and "x_pix = (x + 1) / 2 * (W - 1)" in text
    assert "subtract 1/2" not in text and "((x + 1) * W - 1) / 2" not in text


def test_norm_to_pixel_dtype_is_checked_visibly():
    def float32(xy_norm, *, size, align_corners):
        return n2p_swapped_hw(xy_norm, size=size[::-1], align_corners=align_corners).float()

    with pytest.raises(CheckFailed, match="expected a torch.float64 result for torch.float64 input"):
        nb02.check_norm_to_pixel(float32)


def _shift(dx, dy, size, align_corners, *, sign=-1.0, corners=None, swap=False, pixels=False):
    height, width = size[::-1] if swap else size
    ac = align_corners if corners is None else corners
    sx, sy = (1.0, 1.0) if pixels else ((2 / (width - 1), 2 / (height - 1)) if ac else (2 / width, 2 / height))
    return torch.tensor([[1.0, 0.0, sign * dx * sx], [0.0, 1.0, sign * dy * sy]])


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda dx, dy, *, size, align_corners: _shift(dx, dy, size, align_corners, sign=1.0), "moves the wrong way"),
        (
            lambda dx, dy, *, size, align_corners: _shift(dx, dy, size, align_corners, corners=True),
            "pixel size is that of align_corners=True",
        ),
        (lambda dx, dy, *, size, align_corners: _shift(dx, dy, size, align_corners, swap=True), "H and W are swapped"),
        (lambda dx, dy, *, size, align_corners: _shift(dx, dy, size, align_corners, pixels=True), "not pixels"),
        (lambda dx, dy, *, size, align_corners: _shift(dx, dy, size, align_corners).T, "last column"),
    ],
    ids=["sign", "align_corners", "swap_hw", "pixels", "transposed"],
)
def test_theta_shift_pixels_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        nb02.check_theta_shift_pixels(wrong)
    with pytest.raises(CheckFailed, match=match):
        nb02.grade_theta_shift_pixels(wrong)


def test_theta_shift_pixels_delegation():
    def via_stnlib(dx, dy, *, size, align_corners):
        move = geometry.translation_matrix(float(dx), float(dy))
        return geometry.theta_from_pixel_transform(move, src_size=size, align_corners=align_corners)

    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb02.check_theta_shift_pixels(via_stnlib)


def test_theta_shift_pixels_error_is_wrapped_with_the_input():
    def wrong_unpack(dx, dy, *, size, align_corners):
        height, width, _ = size  # size is (H, W)
        return _shift(dx, dy, (height, width), align_corners)

    with pytest.raises(
        CheckFailed, match=r"theta_shift_pixels on dx_pix=2, dy_pix=1, size=\(4, 6\).*raised ValueError"
    ):
        nb02.check_theta_shift_pixels(wrong_unpack)


def _axis(n, align_corners, *, corners=None):
    ac = align_corners if corners is None else corners
    return torch.linspace(-1, 1, n) if ac else (2 * torch.arange(n, dtype=torch.float32) + 1) / n - 1


def base_linspace_always(height, width, *, align_corners):
    gy, gx = torch.meshgrid(_axis(height, True), _axis(width, True), indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], -1)


def base_wrong_meshgrid(height, width, *, align_corners):
    gx, gy = torch.meshgrid(_axis(width, align_corners), _axis(height, align_corners), indexing="ij")  # (W, H)
    return torch.stack([gx, gy, torch.ones_like(gx)], -1)


def base_yx(height, width, *, align_corners):
    gy, gx = torch.meshgrid(_axis(height, align_corners), _axis(width, align_corners), indexing="ij")
    return torch.stack([gy, gx, torch.ones_like(gx)], -1)


def base_no_ones(height, width, *, align_corners):
    gy, gx = torch.meshgrid(_axis(height, align_corners), _axis(width, align_corners), indexing="ij")
    return torch.stack([gx, gy], -1)


def base_via_affine_grid(height, width, *, align_corners):
    grid = F.affine_grid(torch.eye(2, 3)[None], (1, 1, height, width), align_corners=align_corners)[0]
    return torch.cat([grid, torch.ones(height, width, 1)], -1)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (base_linspace_always, r"align_corners=True grid.*centres are at x = \(2 j \+ 1\) / W - 1"),
        (base_wrong_meshgrid, r"shape \(W, H, 3\)"),
        (base_yx, "x and y are swapped"),
        (base_no_ones, "homogeneous"),
    ],
)
def test_base_grid_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        nb02.check_base_grid(wrong)
    with pytest.raises(CheckFailed, match=match):
        nb02.grade_base_grid(wrong)


def test_base_grid_delegation():
    with pytest.raises((RuntimeError, CheckFailed), match="affine_grid is not available"):
        nb02.check_base_grid(base_via_affine_grid)


def _grid(theta, size, align_corners, *, corners=None, base_dtype=None, transpose_linear=False, drop_shift=False):
    n, _, height, width = size
    ac = align_corners if corners is None else corners
    kw = dict(dtype=base_dtype or theta.dtype)
    xs = torch.linspace(-1, 1, width, **kw) if ac else (2 * torch.arange(width, **kw) + 1) / width - 1
    ys = torch.linspace(-1, 1, height, **kw) if ac else (2 * torch.arange(height, **kw) + 1) / height - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, -1, 3).to(theta.dtype)
    linear, shift = theta[:, :, :2], theta[:, :, 2:]
    if transpose_linear:
        linear = linear.transpose(1, 2)
    if drop_shift:
        shift = torch.zeros_like(shift)
    return (base @ torch.cat([linear, shift], -1).transpose(1, 2)).reshape(n, height, width, 2)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda t, s, align_corners=False: _grid(t, s, align_corners, transpose_linear=True), "transposed"),
        (
            lambda t, s, align_corners=False: _grid(t, s, align_corners, corners=True),
            r"align_corners=True grid.*centres are at x = \(2 j \+ 1\) / W - 1",
        ),
        (
            lambda t, s, align_corners=False: _grid(t, s, align_corners, corners=False),
            r"align_corners=False grid.*centres are at x = 2 j / \(W - 1\) - 1",
        ),
        (lambda t, s, align_corners=False: _grid(t, s, align_corners, drop_shift=True), "translation is missing"),
        (lambda t, s, align_corners=False: _grid(t, s, align_corners).flip(-1), "x and y are swapped"),
        (lambda t, s, align_corners=False: _grid(t, s, align_corners).transpose(1, 2), r"shape \(N, W, H, 2\)"),
    ],
    ids=["transposed", "true_formula", "false_formula", "no_shift", "yx", "swap_hw"],
)
def test_affine_grid_by_hand_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        nb02.check_affine_grid_by_hand(wrong)
    with pytest.raises(CheckFailed, match=match):
        nb02.grade_affine_grid_by_hand(wrong)


def test_affine_grid_by_hand_float32_base():
    def float32_base(theta, size, align_corners=False):
        return _grid(theta, size, align_corners, base_dtype=torch.float32)

    # the visible check has a float64 case: the learner sees the mistake before the grader does
    with pytest.raises(CheckFailed, match=r"(?s)torch.float64.*Hint: the dtype is right but .* float32-accurate"):
        nb02.check_affine_grid_by_hand(float32_base)
    with pytest.raises(CheckFailed, match="float32-accurate"):
        nb02.check_affine_grid_by_hand_autograd(float32_base)
    with pytest.raises(CheckFailed, match="float32-accurate"):
        nb02.grade_affine_grid_by_hand(float32_base)


def test_affine_grid_by_hand_backward_error_is_wrapped():
    """A tensor that autograd saved, changed in place afterwards: the backward pass fails inside the check."""

    def in_place_after_use(theta, size, align_corners=False):
        n, _, height, width = size
        scale = theta * 1.0
        grid = _grid(scale * scale / theta, size, align_corners)  # scale is saved for the backward pass
        scale.mul_(1.0)
        return grid

    with pytest.raises(
        CheckFailed,
        match=r"affine_grid_by_hand \(backward pass through your grid\) on theta of shape \(1, 2, 3\).*"
        r"raised RuntimeError: .*inplace",
    ):
        nb02.check_affine_grid_by_hand_autograd(in_place_after_use)


def test_affine_grid_by_hand_detached():
    def detached(theta, size, align_corners=False):
        return _grid(theta.detach(), size, align_corners)

    nb02.check_affine_grid_by_hand(detached)
    with pytest.raises(CheckFailed, match="through autograd"):
        nb02.check_affine_grid_by_hand_autograd(detached)
    with pytest.raises(CheckFailed, match="through autograd"):
        nb02.grade_affine_grid_by_hand_autograd(detached)


@pytest.mark.parametrize(
    "delegate",
    [
        lambda t, s, align_corners=False: F.affine_grid(t, s, align_corners=align_corners),
        lambda t, s, align_corners=False: torch.affine_grid_generator(t, s, align_corners),
        lambda t, s, align_corners=False: sampling.affine_grid(t, s, align_corners=align_corners),
    ],
    ids=["F.affine_grid", "torch.affine_grid_generator", "stnlib.sampling.affine_grid"],
)
def test_affine_grid_by_hand_delegation(delegate):
    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb02.check_affine_grid_by_hand(delegate)
    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb02.grade_affine_grid_by_hand_autograd(delegate)


def test_message_names_input_and_values():
    with pytest.raises(CheckFailed) as err:
        nb02.check_pixel_to_norm(p2n_true_formula_always)
    text = str(err.value)
    assert "pixel_to_norm on xy_pix of shape" in text and "align_corners=False" in text
    assert "expected" in text and "got" in text and "Hint:" in text


def test_affine_grid_float32_base_grid_is_wrapped():
    """A base grid left in float32 with a float64 theta: a CheckFailed naming the input, with a dtype hint."""

    def float32_base(theta, size, align_corners=False):
        n, _, height, width = size
        xs = torch.linspace(-1, 1, width) * (1 if align_corners else (width - 1) / width)  # float32
        ys = torch.linspace(-1, 1, height) * (1 if align_corners else (height - 1) / height)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        base = torch.stack([gx, gy, torch.ones_like(gx)], -1).view(1, -1, 3)
        return (base @ theta.transpose(1, 2)).view(n, height, width, 2)  # float32 @ float64 raises

    with pytest.raises(
        CheckFailed,
        match=r"(?s)affine_grid_by_hand on theta of shape \(1, 2, 3\) \(torch.float64\).*raised RuntimeError.*"
        r"Hint: two tensors of different dtypes.*dtype=theta.dtype",
    ):
        nb02.check_affine_grid_by_hand_autograd(float32_base)
