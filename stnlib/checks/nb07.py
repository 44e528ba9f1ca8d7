"""Checks for notebook 07 · Beyond one affine transformer (solutions/07_beyond_affine/07_beyond_affine.ipynb).

One pair of functions per exercise:

=====================================================  ======================================================
exercise                                               checks
=====================================================  ======================================================
1 ``tps_kernel(r2)``                                   :func:`check_tps_kernel`, :func:`grade_tps_kernel`
2 ``tps_system(control_xy)``                           :func:`check_tps_system`, :func:`grade_tps_system`
3 ``tps_grid_by_hand(offsets, control_xy, size, ...)``  :func:`check_tps_grid`, :func:`grade_tps_grid`
=====================================================  ======================================================

The oracles: for exercise 1, ``torch.special.xlogy(r2, r2)`` in float64 (r2 log r2 with the limit 0
at 0) and its derivative log r2 + 1; for exercise 2, the system written out with loops over the
control points and ``math.log``; for exercise 3, ``F.affine_grid`` for splines whose control points
all move by one affine map (such a spline *is* that map), the control points themselves (a spline
interpolates them: on a 7x7 grid with ``align_corners=True`` a 4x4 control grid sits on pixel
centres), and ``stnlib.warps.tps_grid`` and its autograd for random offsets. Every expected value
is computed first; the learner's function then runs inside :func:`reference_ops_blocked`, with
``stnlib.warps``' TPS functions and every stnlib model's TPS grid switched off.

Each exercise is checked on its own: an answer may call the notebook's earlier answers (the grid
calls ``tps_system``, which calls ``tps_kernel``), so while one is checked, the earlier ones it
could call are replaced by correct versions. A mistake in exercise 1 then costs exercise 1's
points, not those of 2 and 3 as well.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .. import blocking, warps
from .common import CheckFailed, call_learner, check_close, passed

__all__ = [
    "check_tps_kernel",
    "grade_tps_kernel",
    "check_tps_system",
    "grade_tps_system",
    "check_tps_grid",
    "grade_tps_grid",
]

_EARLIER = {"tps_system": ("tps_kernel",), "tps_grid_by_hand": ("tps_kernel", "tps_system")}


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


# --------------------------------------------------------------------------- the earlier answers, replaced
def _correct(name: str):
    """A correct stand-in for the notebook's ``name``: stnlib's, allowed to run while the rest is blocked."""
    reference = {"tps_kernel": warps.tps_kernel, "tps_system": warps.tps_system}[name]

    def stand_in(*args, **kwargs):
        previous = blocking.set_blocked(None)
        try:
            return reference(*args, **kwargs)
        finally:
            blocking.set_blocked(previous)

    stand_in.__name__ = name
    return stand_in


@contextlib.contextmanager
def _earlier_answers_replaced(fn, exercise: str):
    """While ``fn`` is checked, the notebook's earlier answers it may call are correct ones (even if missing)."""
    namespace = getattr(fn, "__globals__", None)
    names = _EARLIER.get(exercise, ()) if isinstance(namespace, dict) else ()
    missing = object()
    saved = {n: namespace.get(n, missing) for n in names}
    for n in names:
        namespace[n] = _correct(n)
    try:
        yield
    finally:
        for n in names:
            if saved[n] is missing:
                namespace.pop(n, None)
            else:
                namespace[n] = saved[n]


def _call(fn, *args, exercise: str, on: str):
    with _earlier_answers_replaced(fn, exercise):
        return call_learner(fn, *args, name=exercise, on=on)


# --------------------------------------------------------------------------- exercise 1: tps_kernel
def _kernel_oracle(r2: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(r2.double(), r2.double())


def _kernel_case(fn, r2: torch.Tensor, *, on: str, atol: float) -> None:
    expected = _kernel_oracle(r2)
    got = _call(fn, r2.clone(), exercise="tps_kernel", on=on)
    if isinstance(got, torch.Tensor) and got.shape == r2.shape:
        zero = r2 == 0
        if zero.any() and not torch.isfinite(got.detach()[zero]).all():
            raise CheckFailed(
                f"tps_kernel on {on}: the result is {got.detach()[zero][0].item()} where r2 = 0, expected 0\n"
                "  Hint: 0 * log(0) is 0 * (-inf) = nan in floating point, but U(r) -> 0 as r -> 0: put 0 where "
                "r2 == 0 with torch.where, and take the log of a safe value there"
            )
        if got.dtype != r2.dtype:
            raise CheckFailed(
                f"tps_kernel on {on}: expected dtype {r2.dtype} (r2's), got {got.dtype}\n"
                "  Hint: compute with r2 itself (torch.where, torch.log, torch.ones_like(r2)); .float() makes float32, "
                "and torch.tensor(...) or torch.zeros(...) without dtype= are float32"
            )
    r = r2.double().sqrt()
    check_close(
        got,
        expected,
        fn="tps_kernel",
        on=on,
        atol=atol,
        rtol=1e-6,
        mistakes=(
            (
                r2.double() * torch.special.xlogy(1.0, r.clamp_min(1e-300)) * (r2 > 0),
                "U is r2 * log(r2): r^2 log r^2, "
                "twice r^2 log r (the log of the squared distance, not of the distance)",
            ),
            (
                torch.special.xlogy(r2.double() ** 2, r2.double() ** 2),
                "r2 is already the squared distance: U = r2 * log(r2), not r2^2 * log(r2^2)",
            ),
        ),
    )


def _kernel_gradient_case(fn, r2: torch.Tensor, *, on: str, atol: float) -> None:
    x = r2.clone().requires_grad_(True)
    got = _call(fn, x, exercise="tps_kernel", on=on)
    if not (isinstance(got, torch.Tensor) and got.requires_grad):
        raise CheckFailed(
            f"tps_kernel on {on}: the result is not differentiable with respect to r2\n"
            "  Hint: compute U from r2 with torch operations; torch.tensor(...), .item() or .numpy() cut the graph"
        )
    (grad,) = torch.autograd.grad(got.sum(), x)
    zero = r2 == 0
    if not torch.isfinite(grad[zero]).all():
        raise CheckFailed(
            f"tps_kernel on {on}: the values are right, but the gradient at r2 = 0 is {grad[zero][0].item()}\n"
            "  Hint: torch.where sends the gradient into both branches, and the derivative of r2 * log(r2) is "
            "log(r2) + 1 = -inf at 0 (nan once multiplied by 0); take the log of torch.where(r2 > 0, r2, 1) instead"
        )
    positive = ~zero
    expected = torch.log(r2.double()[positive]) + 1.0
    check_close(
        grad[positive],
        expected,
        fn="tps_kernel",
        on=f"{on}: the gradient d U / d r2 = log(r2) + 1 where r2 > 0",
        atol=atol,
        rtol=1e-6,
    )


def check_tps_kernel(fn) -> None:
    """Visible check of ``tps_kernel``: values by the formula, 0 at r2 = 0, and a finite gradient there."""
    r2 = torch.tensor([0.0, 0.25, 1.0, 2.0, 4.0])
    _kernel_case(fn, r2, on="r2 = [0, 0.25, 1, 2, 4] (float32)", atol=1e-5)
    _kernel_gradient_case(fn, r2, on="r2 = [0, 0.25, 1, 2, 4] (float32)", atol=1e-4)
    _kernel_case(fn, r2.double().reshape(1, 5), on="r2 = [[0, 0.25, 1, 2, 4]] (float64, shape (1, 5))", atol=1e-12)
    passed("tps_kernel: U = r2 log r2 with U(0) = 0, a finite gradient at 0, r2's shape and dtype kept")


def grade_tps_kernel(fn) -> None:
    """Hidden tests: a (3, 4, 5) tensor with zeros in float64 and float32, and the gradient in float64."""
    gen = torch.Generator().manual_seed(7701)
    r2 = 3 * torch.rand(3, 4, 5, generator=gen, dtype=torch.float64)
    r2[r2 < 0.4] = 0.0
    _kernel_case(fn, r2, on="a (3, 4, 5) tensor with zeros (float64)", atol=1e-10)
    _kernel_case(fn, r2.float(), on="a (3, 4, 5) tensor with zeros (float32)", atol=1e-5)
    _kernel_gradient_case(fn, r2, on="a (3, 4, 5) tensor with zeros (float64)", atol=1e-8)
    print("tps_kernel: hidden tests passed")


# --------------------------------------------------------------------------- exercise 2: tps_system
def _system_oracle(control: torch.Tensor, *, kernel_of_distance: bool = False, p_order=(0, 1, 2), with_pt=True):
    """L = [[U(|c_i - c_j|^2), P], [P^T, 0]] with loops; the keywords build typical mistakes."""
    k = len(control)
    c = control.double().tolist()
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            r2 = (c[i][0] - c[j][0]) ** 2 + (c[i][1] - c[j][1]) ** 2
            arg = math.sqrt(r2) if kernel_of_distance else r2
            system[i, j] = arg * math.log(arg) if arg > 0 else 0.0
        row = [1.0, c[i][0], c[i][1]]
        row = [row[q] for q in p_order]
        system[i, k:] = torch.tensor(row, dtype=torch.float64)
        if with_pt:
            system[k:, i] = torch.tensor(row, dtype=torch.float64)
    return system


def _system_case(fn, control: torch.Tensor, *, on: str, atol: float) -> None:
    expected = _system_oracle(control)
    got = _call(fn, control.clone(), exercise="tps_system", on=on)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != control.dtype:
        raise CheckFailed(
            f"tps_system on {on}: expected dtype {control.dtype} (control_xy's), got {got.dtype}\n"
            "  Hint: create the ones and zeros with dtype=control_xy.dtype"
        )
    check_close(
        got,
        expected,
        fn="tps_system",
        on=on,
        atol=atol,
        rtol=1e-6,
        mistakes=(
            (
                _system_oracle(control, kernel_of_distance=True),
                "U takes the squared distance |c_i - c_j|^2, not the distance",
            ),
            (_system_oracle(control, p_order=(1, 2, 0)), "P's columns are (1, x, y), in that order"),
            (
                _system_oracle(control, with_pt=False),
                "the last three rows hold P^T and then zeros: they ask sum w_k = 0 and sum w_k c_k = 0",
            ),
        ),
    )


def check_tps_system(fn) -> None:
    """Visible check of ``tps_system``: the 2x2 control grid, whose system can be written by hand, and a 3x3 one."""
    _system_case(
        fn, warps.tps_control_points(2), on="the 2x2 control points (-1, -1), (1, -1), (-1, 1), (1, 1)", atol=1e-5
    )
    _system_case(fn, warps.tps_control_points(3), on="the 3x3 control points of [-1, 1]^2 (float32)", atol=1e-5)
    _system_case(
        fn,
        warps.tps_control_points(3, dtype=torch.float64),
        on="the 3x3 control points in float64 (L should be float64 too)",
        atol=1e-12,
    )
    passed("tps_system: [[U(|c_i - c_j|^2), P], [P^T, 0]] with P = (1, x, y), in control_xy's dtype")


def grade_tps_system(fn) -> None:
    """Hidden tests: irregular control points in float64 (6 and 16 of them) and a 4x4 grid in float32."""
    gen = torch.Generator().manual_seed(7702)
    for k in (6, 16):
        control = 2 * torch.rand(k, 2, generator=gen, dtype=torch.float64) - 1
        _system_case(fn, control, on=f"{k} random control points (float64)", atol=1e-10)
    _system_case(fn, warps.tps_control_points(4), on="the 4x4 control grid (float32)", atol=1e-4)
    print("tps_system: hidden tests passed")


# --------------------------------------------------------------------------- exercise 3: tps_grid_by_hand
def _affine_offsets(theta: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """Offsets that move every control point by the affine map theta (N, 2, 3)."""
    homogeneous = torch.cat([control, torch.ones(len(control), 1, dtype=control.dtype)], dim=1)
    return homogeneous @ theta.transpose(1, 2) - control


def _reference_grid(offsets, control, size, align_corners):
    return warps.tps_grid(offsets.detach(), control, size, align_corners=align_corners)


def _grid_case(fn, offsets, control, size, align_corners, expected, *, on: str, atol: float) -> None:
    got = _call(fn, offsets.clone(), control.clone(), size, align_corners, exercise="tps_grid_by_hand", on=on)
    mistakes = [
        (
            _reference_grid(offsets - control, control, size, align_corners),
            "the targets are control_xy + offsets (where each control point reads), not the offsets alone",
        ),
        (expected.flip(-1), "the last dimension is (x, y): x is the column, y the row"),
        (
            _reference_grid(offsets, control, size, not align_corners),
            f"the output points depend on align_corners (notebook 02): with align_corners={align_corners} "
            + ("-1 and +1 are the corner pixels' centres" if align_corners else "-1 and +1 are the outer edges"),
        ),
    ]
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != offsets.dtype:
        raise CheckFailed(
            f"tps_grid_by_hand on {on}: expected dtype {offsets.dtype} (offsets'), got {got.dtype}\n"
            "  Hint: make every new tensor in offsets' dtype (control_xy.to(offsets.dtype), and dtype=offsets.dtype "
            "for the zero rows, the output points and the column of ones); .float() makes float32"
        )
    check_close(got, expected, fn="tps_grid_by_hand", on=on, atol=atol, mistakes=mistakes)


def _grid_gradient_case(fn, offsets, control, size, align_corners, *, on: str, atol: float) -> None:
    weights = torch.randn(size[0], size[2], size[3], 2, generator=torch.Generator().manual_seed(7), dtype=offsets.dtype)
    with torch.enable_grad():
        reference = offsets.detach().clone().requires_grad_(True)
        ref_out = warps.tps_grid(reference, control, size, align_corners=align_corners)
        (expected,) = torch.autograd.grad((ref_out * weights).sum(), reference)
    x = offsets.detach().clone().requires_grad_(True)
    got = _call(fn, x, control.clone(), size, align_corners, exercise="tps_grid_by_hand", on=on)
    if not (isinstance(got, torch.Tensor) and got.requires_grad):
        raise CheckFailed(
            f"tps_grid_by_hand on {on}: the grid is not differentiable with respect to offsets; the localisation "
            "network learns through it\n  Hint: build it from offsets with torch operations (torch.linalg.solve, @); "
            "torch.tensor(...), .item() or .numpy() cut the graph"
        )
    (grad,) = torch.autograd.grad((got * weights).sum(), x)
    check_close(grad, expected, fn="tps_grid_by_hand", on=f"{on}: the gradient with respect to offsets", atol=atol)


def check_tps_grid(fn) -> None:
    """Visible check of ``tps_grid_by_hand``: identity, affine-only splines, interpolation, and the gradient."""
    control3 = warps.tps_control_points(3)
    size = (1, 1, 5, 4)
    identity = F.affine_grid(torch.eye(2, 3)[None], size, align_corners=False)
    _grid_case(
        fn,
        torch.zeros(1, 9, 2),
        control3,
        size,
        False,
        identity,
        on="zero offsets, 3x3 control points, size (1, 1, 5, 4), align_corners=False (the identity)",
        atol=1e-5,
    )
    control4 = warps.tps_control_points(4)
    theta = torch.tensor([[[0.8, -0.3, 0.1], [0.25, 0.9, -0.2]], [[1.1, 0.0, 0.0], [0.0, 0.7, 0.3]]])
    size = (2, 1, 6, 7)
    _grid_case(
        fn,
        _affine_offsets(theta, control4),
        control4,
        size,
        False,
        F.affine_grid(theta, size, align_corners=False),
        on="2 splines whose 4x4 control points move by one affine map each (F.affine_grid of it), "
        "size (2, 1, 6, 7), align_corners=False",
        atol=1e-4,
    )
    offsets = 0.15 * torch.randn(1, 16, 2, generator=torch.Generator().manual_seed(70))
    _grid_case(
        fn,
        offsets,
        control4,
        (1, 1, 7, 7),
        True,
        _reference_grid(offsets, control4, (1, 1, 7, 7), True),
        on="random offsets, 4x4 control points, size (1, 1, 7, 7), align_corners=True (the pixels (0, 2, 4, 6) x "
        "(0, 2, 4, 6) sit on the control points and must read exactly control_xy + offsets)",
        atol=1e-4,
    )
    _grid_gradient_case(
        fn, offsets, control4, (1, 1, 5, 6), False, on="random offsets, size (1, 1, 5, 6) (float32)", atol=1e-3
    )
    offsets64, control64 = offsets.double(), warps.tps_control_points(4, dtype=torch.float64)
    _grid_case(
        fn,
        offsets64,
        control64,
        (1, 1, 5, 6),
        False,
        _reference_grid(offsets64, control64, (1, 1, 5, 6), False),
        on="the same random offsets and control points in float64, size (1, 1, 5, 6) (the grid should be float64)",
        atol=1e-9,
    )
    passed(
        "tps_grid_by_hand: identity, affine splines as F.affine_grid, exact at the control points, differentiable, "
        "in offsets' dtype"
    )


def grade_tps_grid(fn) -> None:
    """Hidden tests: batches in float64 with irregular sizes and 5x5 control points, both align_corners, gradients."""
    gen = torch.Generator().manual_seed(7703)
    for points, size, align_corners in ((5, (3, 1, 5, 9), False), (3, (2, 2, 8, 6), True), (4, (1, 1, 1, 4), False)):
        control = warps.tps_control_points(points, dtype=torch.float64)
        offsets = 0.2 * torch.randn(size[0], points**2, 2, generator=gen, dtype=torch.float64)
        expected = _reference_grid(offsets, control, size, align_corners)
        on = f"{points}x{points} control points, size {size}, align_corners={align_corners} (float64)"
        _grid_case(fn, offsets, control, size, align_corners, expected, on=on, atol=1e-8)
    _grid_gradient_case(fn, offsets, control, (1, 1, 3, 5), True, on="the gradient (float64)", atol=1e-8)
    control = warps.tps_control_points(4)
    offsets = 0.2 * torch.randn(4, 16, 2, generator=gen)
    _grid_case(
        fn,
        offsets,
        control,
        (4, 3, 9, 9),
        False,
        _reference_grid(offsets, control, (4, 3, 9, 9), False),
        on="4 random splines, size (4, 3, 9, 9) (float32)",
        atol=1e-4,
    )
    print("tps_grid_by_hand: hidden tests passed")
