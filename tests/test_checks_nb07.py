"""The checks of notebook 07 (stnlib.checks.nb07): they pass on the solutions, fail on typical mistakes
with a hint that says what to change, refuse answers that delegate to stnlib's thin-plate splines, and
grade each exercise on its own (a wrong earlier answer does not cost the later ones)."""

from __future__ import annotations

import pytest
import torch
from nbutils import SOLUTIONS, answer_namespace

from stnlib import models, warps
from stnlib.checks import CheckFailed, nb07

NOTEBOOK = SOLUTIONS / "07_beyond_affine" / "07_beyond_affine.ipynb"


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(NOTEBOOK)


CHECKS = [
    (nb07.check_tps_kernel, nb07.grade_tps_kernel, "tps_kernel"),
    (nb07.check_tps_system, nb07.grade_tps_system, "tps_system"),
    (nb07.check_tps_grid, nb07.grade_tps_grid, "tps_grid_by_hand"),
]
IDS = [c[0].__name__ for c in CHECKS]


@pytest.mark.parametrize("check, grade, name", CHECKS, ids=IDS)
def test_solution_passes(ns, check, grade, name, capsys):
    check(ns[name])
    grade(ns[name])
    out = capsys.readouterr().out
    assert "OK:" in out and "hidden tests passed" in out


@pytest.mark.parametrize("check, grade, name", CHECKS, ids=IDS)
def test_stub_raises_not_implemented(check, grade, name):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check(stub)
    with pytest.raises(NotImplementedError):
        grade(stub)


def test_answer_cells_need_only_torch_f_math(ns):
    assert {"tps_kernel", "tps_system", "tps_grid_by_hand"} <= set(ns)


# --------------------------------------------------------------------------- exercise 1: tps_kernel
def kernel_nan_at_zero(r2):
    return r2 * torch.log(r2)


def kernel_nan_gradient(r2):
    return torch.where(r2 > 0, r2 * torch.log(r2), torch.zeros_like(r2))


def kernel_of_distance(r2):
    r = r2.sqrt()
    safe = torch.where(r > 0, r, torch.ones_like(r))
    return torch.where(r > 0, r2 * torch.log(safe), torch.zeros_like(r))


def kernel_squared_twice(r2):
    x = r2**2
    safe = torch.where(x > 0, x, torch.ones_like(x))
    return torch.where(x > 0, x * torch.log(safe), torch.zeros_like(x))


def kernel_cuts_the_graph(r2):
    values = [v * torch.log(torch.tensor(v)).item() if v > 0 else 0.0 for v in r2.flatten().tolist()]
    return torch.tensor(values, dtype=r2.dtype).reshape(r2.shape)


def kernel_float32_only(r2):
    r2 = r2.float()
    safe = torch.where(r2 > 0, r2, torch.ones_like(r2))
    return torch.where(r2 > 0, r2 * torch.log(safe), torch.zeros_like(r2))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (kernel_nan_at_zero, "is nan where r2 = 0, expected 0"),
        (kernel_nan_gradient, "the gradient at r2 = 0 is nan"),
        (kernel_of_distance, r"twice r\^2 log r"),
        (kernel_squared_twice, "r2 is already the squared distance"),
        (kernel_cuts_the_graph, "not differentiable with respect to r2"),
    ],
)
def test_kernel_mistakes_get_their_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb07.check_tps_kernel(wrong)


def test_kernel_float32_fails_visibly(ns):
    """The docstring promises r2's dtype: the visible check has a float64 case, so a .float() is seen before the
    grader takes the points."""
    match = r"float64, shape \(1, 5\)\): expected dtype torch.float64 \(r2's\), got torch.float32\n  Hint: "
    with pytest.raises(CheckFailed, match=match):
        nb07.check_tps_kernel(kernel_float32_only)
    with pytest.raises(CheckFailed, match=r"expected dtype torch.float64 \(r2's\), got torch.float32"):
        nb07.grade_tps_kernel(kernel_float32_only)


# --------------------------------------------------------------------------- exercise 2: tps_system
def _system(control_xy, *, kernel_arg=lambda d2: d2, order=(0, 1, 2), pt=True, dtype=None):
    k = control_xy.shape[0]
    dtype = dtype or control_xy.dtype
    d2 = ((control_xy[:, None, :] - control_xy[None, :, :]) ** 2).sum(-1)
    a = kernel_arg(d2)
    u = torch.where(a > 0, a * torch.log(torch.where(a > 0, a, torch.ones_like(a))), torch.zeros_like(a))
    columns = [torch.ones(k, 1, dtype=control_xy.dtype), control_xy[:, :1], control_xy[:, 1:]]
    p = torch.cat([columns[i] for i in order], dim=1)
    top = torch.cat([u, p], dim=1)
    bottom = torch.cat([p.T if pt else torch.zeros_like(p.T), torch.zeros(3, 3, dtype=control_xy.dtype)], dim=1)
    return torch.cat([top, bottom], dim=0).to(dtype)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda c: _system(c, kernel_arg=torch.sqrt), "U takes the squared distance"),
        (lambda c: _system(c, order=(1, 2, 0)), r"P's columns are \(1, x, y\), in that order"),
        (lambda c: _system(c, pt=False), "the last three rows hold P\\^T"),
        (lambda c: _system(c)[:-1, :-1], r"expected shape \(7, 7\), got \(6, 6\)"),
    ],
)
def test_system_mistakes_get_their_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb07.check_tps_system(wrong)


def test_system_float32_fails_visibly():
    wrong = lambda c: _system(c, dtype=torch.float32)  # noqa: E731
    with pytest.raises(CheckFailed, match=r"(?s)in float64.*create the ones and zeros with dtype=control_xy.dtype"):
        nb07.check_tps_system(wrong)
    with pytest.raises(CheckFailed, match="create the ones and zeros with dtype=control_xy.dtype"):
        nb07.grade_tps_system(wrong)


# --------------------------------------------------------------------------- exercise 3: tps_grid_by_hand
def _grid_with(ns, transform):
    """The solution's grid, with its inputs changed by ``transform`` (a typical mistake)."""
    right = ns["tps_grid_by_hand"]

    def wrong(offsets, control_xy, size, align_corners=False):
        return transform(right, offsets, control_xy, size, align_corners)

    return wrong


@pytest.mark.parametrize(
    "transform, message",
    [
        (lambda f, o, c, s, a: f(o - c, c, s, a), r"the targets are control_xy \+ offsets"),
        (lambda f, o, c, s, a: f(o, c, s, a).flip(-1), r"the last dimension is \(x, y\)"),
        (lambda f, o, c, s, a: f(o, c, s, False), "the output points depend on align_corners"),
        (lambda f, o, c, s, a: f(o, c, s, a).detach(), "the grid is not differentiable with respect to offsets"),
    ],
)
def test_grid_mistakes_get_their_hint(ns, transform, message):
    with pytest.raises(CheckFailed, match=message):
        nb07.check_tps_grid(_grid_with(ns, transform))


def test_grid_float32_only_fails_visibly(ns):
    wrong = _grid_with(ns, lambda f, o, c, s, a: f(o.float(), c.float(), s, a))
    match = r"in float64, .*expected dtype torch.float64 \(offsets'\), got torch.float32\n  Hint: "
    with pytest.raises(CheckFailed, match=match):
        nb07.check_tps_grid(wrong)
    with pytest.raises(CheckFailed, match=r"expected dtype torch.float64 \(offsets'\), got torch.float32"):
        nb07.grade_tps_grid(wrong)


def test_grid_float32_points_fail_visibly(ns):
    """Output points made without dtype= (float32 by default) in a float64 grid: the values are only float32-accurate,
    which the float64 case of the visible check sees."""

    def float32_points(offsets, control_xy, size, align_corners=False):
        grid = ns["tps_grid_by_hand"](offsets.float(), control_xy.float(), size, align_corners)
        return grid.to(offsets.dtype)

    with pytest.raises(CheckFailed, match=r"in float64, .*max \|diff\|"):
        nb07.check_tps_grid(float32_points)


def test_each_exercise_is_graded_on_its_own(ns):
    """A wrong tps_kernel in the notebook does not fail the system or the grid (which call it), and is put back."""
    namespace = ns["tps_grid_by_hand"].__globals__
    right_kernel = namespace["tps_kernel"]
    namespace["tps_kernel"] = kernel_nan_at_zero
    try:
        nb07.check_tps_system(ns["tps_system"])
        nb07.check_tps_grid(ns["tps_grid_by_hand"])
        nb07.grade_tps_grid(ns["tps_grid_by_hand"])
        assert namespace["tps_kernel"] is kernel_nan_at_zero  # restored after each check
        with pytest.raises(CheckFailed):
            nb07.check_tps_kernel(namespace["tps_kernel"])
        del namespace["tps_kernel"]  # an answer cell that never ran (a syntax error) is no reason to fail either
        nb07.check_tps_system(ns["tps_system"])
        assert "tps_kernel" not in namespace
    finally:
        namespace["tps_kernel"] = right_kernel


@pytest.mark.parametrize(
    "delegate",
    [
        lambda o, c, s, a=False: warps.tps_grid(o, c, s, align_corners=a),
        lambda o, c, s, a=False: warps.grid_from_tps_matrix(
            warps.tps_grid_matrix(c, s[2:], align_corners=a), c + o, s[2:]
        ),
        lambda o, c, s, a=False: models.TPSGrid(int(round(len(c) ** 0.5)), s[2:], align_corners=a)(o),
    ],
    ids=["warps.tps_grid", "warps.tps_grid_matrix", "models.TPSGrid"],
)
def test_delegating_to_stnlib_fails(delegate):
    with pytest.raises(CheckFailed, match="not available"):
        nb07.check_tps_grid(delegate)


def test_delegating_kernel_and_system_fails():
    with pytest.raises(CheckFailed, match="not available"):
        nb07.check_tps_kernel(warps.tps_kernel)
    with pytest.raises(CheckFailed, match="not available"):
        nb07.check_tps_system(warps.tps_system)


def test_another_librarys_spline_scores_nothing():
    """scipy's RBFInterpolator draws the same spline (its kernel r^2 log r is half of ours: the same fit), but on
    numpy arrays: the values pass and the check fails on the gradient the localisation network needs."""
    import numpy as np
    from scipy.interpolate import RBFInterpolator

    def with_scipy(offsets, control_xy, size, align_corners=False):
        n, _, h, w = size
        xs = np.linspace(-1, 1, w) if align_corners else (2 * np.arange(w) + 1) / w - 1
        ys = np.linspace(-1, 1, h) if align_corners else (2 * np.arange(h) + 1) / h - 1
        points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        c = control_xy.double().numpy()
        fits = [
            RBFInterpolator(c, c + o.double().numpy(), kernel="thin_plate_spline")(points) for o in offsets.detach()
        ]
        return torch.tensor(np.stack(fits), dtype=offsets.dtype).reshape(n, h, w, 2)

    with pytest.raises(CheckFailed, match="the grid is not differentiable with respect to offsets"):
        nb07.check_tps_grid(with_scipy)
