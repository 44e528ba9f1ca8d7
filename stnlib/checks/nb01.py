"""Checks for notebook 01 · Affine matrices (``solutions/01_affine_matrices/01_affine_matrices.ipynb``).

Exercises and their checks (``check_*`` visible, ``grade_*`` hidden):

1. ``to_homogeneous(points_xy)``: (..., 2) -> (..., 3), appends a 1.
2. ``from_homogeneous(points_h)``: (..., 3) -> (..., 2), divides by the last coordinate.
3. ``rotation_by_hand(angle_deg)``: float or tensor (...) -> (..., 3, 3).
4. ``rotate_about(angle_deg, center_xy)``: (3, 3) rotation about a point other than the origin.
5. ``invert_affine_by_hand(matrix)``: (..., 3, 3) -> (..., 3, 3) with the closed form.
6. ``matrix_from_theta(theta)``: (..., 2, 3) -> (..., 3, 3), adds the row (0, 0, 1).

Every expected value is computed first (closed forms with ``torch.cos`` / ``torch.sin``,
``torch.cat``, ``torch.linalg.inv``), then the learner's function is called while torch's and
stnlib's reference ops are switched off (:func:`~stnlib.checks.common.reference_ops_blocked`).
The notebook's demo cells fall back on the ``*_reference`` functions below (and on
``stnlib.geometry``) until an exercise is done; these too are switched off during checks.
"""

from __future__ import annotations

import contextlib
import math
from unittest import mock

import torch

from ..blocking import reference
from .common import CheckFailed, call_learner, check_close, passed

__all__ = [
    "to_homogeneous_reference",
    "from_homogeneous_reference",
    "check_to_homogeneous",
    "grade_to_homogeneous",
    "check_from_homogeneous",
    "grade_from_homogeneous",
    "check_rotation_by_hand",
    "grade_rotation_by_hand",
    "check_rotation_by_hand_batch",
    "grade_rotation_by_hand_batch",
    "check_rotate_about_fixed_centre",
    "grade_rotate_about_fixed_centre",
    "check_rotate_about",
    "grade_rotate_about",
    "check_invert_affine_by_hand",
    "grade_invert_affine_by_hand",
    "check_invert_affine_by_hand_round_trip",
    "grade_invert_affine_by_hand_round_trip",
    "check_matrix_from_theta",
    "grade_matrix_from_theta",
]


# --------------------------------------------------------------------------- demo fallbacks
@reference
def to_homogeneous_reference(points_xy: torch.Tensor) -> torch.Tensor:
    """(..., 2) points -> (..., 3) homogeneous points (x, y, 1). Used by the demos of notebook 01.

    Example:
        >>> to_homogeneous_reference(torch.tensor([3.0, -2.0]))
        tensor([ 3., -2.,  1.])
    """
    return torch.cat([points_xy, torch.ones_like(points_xy[..., :1])], dim=-1)


@reference
def from_homogeneous_reference(points_h: torch.Tensor) -> torch.Tensor:
    """(..., 3) homogeneous points -> (..., 2) points (x / w, y / w). Used by the demos of notebook 01.

    Example:
        >>> from_homogeneous_reference(torch.tensor([4.0, -2.0, 2.0]))
        tensor([ 2., -1.])
    """
    return points_h[..., :2] / points_h[..., 2:]


# --------------------------------------------------------------------------- helpers
_KEEP_DTYPE = "keep the input's dtype"
#: why a function given Python floats must return torch's default dtype (float32)
_DEFAULT_DTYPE = (
    "the input is a Python float, so the result has torch's default dtype: torch.tensor(...) and "
    "torch.as_tensor(...) give it when no dtype= is passed"
)


def _check_dtype(got, dtype: torch.dtype, *, fn: str, on: str, why: str = _KEEP_DTYPE) -> None:
    """Raise CheckFailed if ``got`` is a tensor of another dtype (check_close reports non-tensors)."""
    if isinstance(got, torch.Tensor) and got.dtype != dtype:
        raise CheckFailed(f"{fn} on {on}: expected dtype {dtype}, got {got.dtype} ({why})")


def _rotation(angle_deg: torch.Tensor) -> torch.Tensor:
    """Oracle: closed-form (..., 3, 3) rotation from torch.cos / torch.sin."""
    rad = angle_deg * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Oracle: closed-form (..., 3, 3) translation."""
    z, o = torch.zeros_like(tx), torch.ones_like(tx)
    return torch.stack([torch.stack([o, z, tx], -1), torch.stack([z, o, ty], -1), torch.stack([z, z, o], -1)], -2)


def _affine(linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) linear part and (..., 2) shift -> (..., 3, 3) affine matrix."""
    top = torch.cat([linear, shift.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 2] = 1.0
    return torch.cat([top, bottom], dim=-2)


def _sheared_matrix(dtype=torch.float32) -> torch.Tensor:
    """T(2, -1) @ R(30) @ Sh(0.5) @ S(2, 0.5): its linear part is not a rotation, so A^T != A^-1."""
    r = _rotation(torch.tensor(30.0, dtype=torch.float64))[:2, :2]
    linear = (
        r
        @ torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)
        @ torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    )
    return _affine(linear, torch.tensor([2.0, -1.0], dtype=torch.float64)).to(dtype)


def _random_affine(gen: torch.Generator, batch: tuple, dtype) -> torch.Tensor:
    """Random well-conditioned affine matrices (..., 3, 3): rotation x shear x scale, plus a shift."""
    angle = torch.rand(batch, generator=gen, dtype=torch.float64) * 360.0 - 180.0
    r = _rotation(angle)[..., :2, :2]
    shear = torch.zeros(batch + (2, 2), dtype=torch.float64)
    shear[..., 0, 0] = shear[..., 1, 1] = 1.0
    shear[..., 0, 1] = torch.rand(batch, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    scale = torch.diag_embed(torch.rand(batch + (2,), generator=gen, dtype=torch.float64) * 2.5 + 0.4)
    shift = torch.rand(batch + (2,), generator=gen, dtype=torch.float64) * 20.0 - 10.0
    return _affine(r @ shear @ scale, shift).to(dtype)


@contextlib.contextmanager
def _only_2x2_inverses(fn: str):
    """Inside the block, torch's matrix inverses accept only 2x2 matrices (the part A of [A t; 0 1])."""

    def guard(real, label):
        def wrapped(a, *args, **kwargs):
            if isinstance(a, torch.Tensor) and tuple(a.shape[-2:]) != (2, 2):
                raise CheckFailed(
                    f"{fn}: use the closed form inv([A t; 0 1]) = [inv(A), -inv(A) t; 0 1]. {label} may invert "
                    f"the 2x2 part A, but it was called on a matrix of shape {tuple(a.shape)}"
                )
            return real(a, *args, **kwargs)

        return wrapped

    targets = [
        (torch.linalg, "inv", "torch.linalg.inv"),
        (torch.linalg, "inv_ex", "torch.linalg.inv_ex"),
        (torch.linalg, "pinv", "torch.linalg.pinv"),
        (torch.linalg, "solve", "torch.linalg.solve"),
        (torch, "inverse", "torch.inverse"),
        (torch.Tensor, "inverse", "Tensor.inverse"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, attr, label in targets:
            stack.enter_context(mock.patch.object(owner, attr, guard(getattr(owner, attr), label)))
        yield


# --------------------------------------------------------------------------- 1. to_homogeneous
def _expected_to_h(p: torch.Tensor) -> torch.Tensor:
    return torch.cat([p, torch.ones(p.shape[:-1] + (1,), dtype=p.dtype)], dim=-1)


def _compare_to_homogeneous(fn, cases) -> None:
    for p, on in cases:
        expected = _expected_to_h(p)
        keep = p.clone()
        got = call_learner(fn, p, name="to_homogeneous", on=on)
        _check_dtype(got, p.dtype, fn="to_homogeneous", on=on)
        check_close(got, expected, fn="to_homogeneous", on=on, atol=0.0)
        if not torch.equal(p, keep):
            raise CheckFailed(f"to_homogeneous on {on}: it changed its input points; return a new tensor instead")


def check_to_homogeneous(fn) -> None:
    """Visible check of ``to_homogeneous``: one point (2,), points (4, 2), a batch (2, 3, 2) in float64."""
    batch = torch.arange(12, dtype=torch.float64).reshape(2, 3, 2) - 5.5
    cases = [
        (torch.tensor([3.0, -2.0]), "one point (x, y) = (3, -2), shape (2,)"),
        (torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 1.0], [1.0, 5.0]]), "4 points, shape (4, 2)"),
        (batch, "a batch of shape (2, 3, 2), float64"),
    ]
    _compare_to_homogeneous(fn, cases)
    passed("to_homogeneous appends a 1 to single points, lists of points and batches, and keeps the dtype")


def grade_to_homogeneous(fn) -> None:
    """Hidden tests of ``to_homogeneous``: random points of several batch shapes, float32 and float64."""
    gen = torch.Generator().manual_seed(101)
    cases = []
    for shape, dtype in [((7, 2), torch.float32), ((3, 5, 2), torch.float64), ((2, 1, 4, 2), torch.float32)]:
        p = (torch.rand(shape, generator=gen, dtype=torch.float64) * 200.0 - 100.0).to(dtype)
        cases.append((p, f"random points of shape {shape}, {dtype}"))
    _compare_to_homogeneous(fn, cases)
    print("to_homogeneous: hidden tests passed")


# --------------------------------------------------------------------------- 2. from_homogeneous
def _compare_from_homogeneous(fn, cases) -> None:
    for ph, on in cases:
        expected = ph[..., :2] / ph[..., 2:]
        got = call_learner(fn, ph.clone(), name="from_homogeneous", on=on)
        _check_dtype(got, ph.dtype, fn="from_homogeneous", on=on)
        check_close(got, expected, fn="from_homogeneous", on=on, atol=1e-6, rtol=1e-6)


def check_from_homogeneous(fn) -> None:
    """Visible check of ``from_homogeneous``: w = 1, w = 2, and two points with different w."""
    cases = [
        (torch.tensor([3.0, -2.0, 1.0]), "(x, y, w) = (3, -2, 1)"),
        (torch.tensor([4.0, -2.0, 2.0]), "(x, y, w) = (4, -2, 2), which is the point (2, -1)"),
        (
            torch.tensor([[2.0, 4.0, 2.0], [3.0, -6.0, 3.0]]),
            "2 points of shape (2, 3) with w = 2 and w = 3 (each point divides by its own w)",
        ),
        (
            torch.tensor([[[1.0, 2.0, 0.5]], [[-3.0, 6.0, -3.0]]], dtype=torch.float64),
            "a batch of shape (2, 1, 3), float64, with w = 0.5 and w = -3",
        ),
    ]
    _compare_from_homogeneous(fn, cases)
    passed("from_homogeneous divides x and y by w, point by point, for single points and batches")


def grade_from_homogeneous(fn) -> None:
    """Hidden tests of ``from_homogeneous``: random points with w of either sign, several shapes and dtypes."""
    gen = torch.Generator().manual_seed(102)
    cases = []
    for shape, dtype in [((6, 3), torch.float32), ((2, 4, 3), torch.float64), ((3, 3), torch.float64)]:
        ph = torch.rand(shape, generator=gen, dtype=torch.float64) * 20.0 - 10.0
        w = torch.rand(shape[:-1], generator=gen, dtype=torch.float64) * 1.5 + 0.5
        sign = torch.where(torch.rand(shape[:-1], generator=gen) < 0.3, -1.0, 1.0).to(torch.float64)
        ph[..., 2] = w * sign
        cases.append((ph.to(dtype), f"random points of shape {shape}, {dtype}, w in +-[0.5, 2]"))
    _compare_from_homogeneous(fn, cases)
    print("from_homogeneous: hidden tests passed")


# --------------------------------------------------------------------------- 3. rotation_by_hand
def check_rotation_by_hand(fn) -> None:
    """Visible check of ``rotation_by_hand`` on single angles (Python floats) against cos/sin."""
    for angle, note in [(30.0, ""), (90.0, " (the x axis turns onto the y axis, i.e. down on screen)"), (-45.0, "")]:
        on = f"angle_deg={angle}{note}"
        expected = _rotation(torch.tensor(angle, dtype=torch.float64)).to(torch.float32)
        got = call_learner(fn, angle, name="rotation_by_hand", on=on)
        _check_dtype(got, torch.get_default_dtype(), fn="rotation_by_hand", on=on, why=_DEFAULT_DTYPE)
        check_close(got, expected, fn="rotation_by_hand", on=on, atol=1e-6)
    passed("rotation_by_hand matches [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]] for 30, 90 and -45 degrees")


def grade_rotation_by_hand(fn) -> None:
    """Hidden tests of ``rotation_by_hand``: random single angles, including beyond +-180 degrees."""
    gen = torch.Generator().manual_seed(103)
    for angle in (torch.rand(5, generator=gen, dtype=torch.float64) * 1440.0 - 720.0).tolist():
        on = f"angle_deg={angle:.3f}"
        expected = _rotation(torch.tensor(angle, dtype=torch.float64)).to(torch.float32)
        got = call_learner(fn, angle, name="rotation_by_hand", on=on)
        check_close(got, expected, fn="rotation_by_hand", on=on, atol=2e-6)
    print("rotation_by_hand: hidden tests passed")


def _compare_rotation_batch(fn, angles: torch.Tensor, on: str) -> None:
    expected = _rotation(angles.to(torch.float64)).to(angles.dtype)
    eye = torch.eye(3, dtype=torch.float64).expand(expected.shape)
    got = call_learner(fn, angles.clone(), name="rotation_by_hand", on=on)
    tol = 1e-5 if angles.dtype == torch.float32 else 1e-12
    _check_dtype(got, angles.dtype, fn="rotation_by_hand", on=on)
    check_close(got, expected, fn="rotation_by_hand", on=on, atol=tol)
    g = got.detach().to(torch.float64)
    check_close(g.transpose(-1, -2) @ g, eye, fn="rotation_by_hand", on=f"{on}: R^T R should be the identity", atol=tol)
    check_close(
        torch.linalg.det(g),
        torch.ones(expected.shape[:-2], dtype=torch.float64),
        fn="rotation_by_hand",
        on=f"{on}: det(R) should be 1",
        atol=tol,
    )


def check_rotation_by_hand_batch(fn) -> None:
    """Visible check of ``rotation_by_hand`` on tensors of angles (B,): values, dtype, R^T R = I, det 1."""
    _compare_rotation_batch(fn, torch.tensor([0.0, 30.0, -90.0, 200.0]), "angle_deg=tensor([0, 30, -90, 200])")
    _compare_rotation_batch(
        fn, torch.tensor([10.0, -135.0], dtype=torch.float64), "angle_deg=tensor([10, -135], dtype=float64)"
    )
    passed("rotation_by_hand turns a tensor of B angles into (B, 3, 3) rotations (orthonormal, det 1), dtype kept")


def grade_rotation_by_hand_batch(fn) -> None:
    """Hidden tests of ``rotation_by_hand`` on random batches of angles, float32 and float64."""
    gen = torch.Generator().manual_seed(104)
    for shape, dtype in [((9,), torch.float32), ((5,), torch.float64), ((1,), torch.float64)]:
        angles = (torch.rand(shape, generator=gen, dtype=torch.float64) * 720.0 - 360.0).to(dtype)
        _compare_rotation_batch(fn, angles, f"{shape[0]} random angles, {dtype}")
    print("rotation_by_hand (batches): hidden tests passed")


# --------------------------------------------------------------------------- 4. rotate_about
def _apply(m: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Apply a (3, 3) matrix to (P, 2) points (float64)."""
    return xy @ m[:2, :2].T + m[:2, 2]


def _compare_fixed_centre(fn, angle: float, center: tuple, offsets: torch.Tensor) -> None:
    on = f"angle_deg={angle}, center_xy={center}"
    c = torch.tensor(center, dtype=torch.float64)
    rad = math.radians(angle)
    rot = torch.tensor([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]], dtype=torch.float64)
    expected_points = c + offsets @ rot.T  # each offset from the centre, turned by the angle
    got = call_learner(fn, angle, center, name="rotate_about", on=on)
    check_close(got, torch.zeros(3, 3), fn="rotate_about", on=f"{on} (its shape)", atol=float("inf"))
    g = got.detach().to(torch.float64)
    check_close(
        g[2],
        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
        fn="rotate_about",
        on=f"{on}: the last row of an affine matrix",
        atol=1e-6,
    )
    check_close(
        _apply(g, c[None]), c[None], fn="rotate_about", on=f"{on}: the centre {center} must not move", atol=1e-4
    )
    moved = _apply(g, c + offsets)
    dist = (moved - c).norm(dim=-1)
    check_close(
        dist,
        offsets.norm(dim=-1),
        fn="rotate_about",
        on=f"{on}: distances to the centre of the points centre + {offsets.tolist()} must not change",
        atol=1e-4,
    )
    check_close(
        moved,
        expected_points,
        fn="rotate_about",
        on=f"{on}: the points centre + {offsets.tolist()} must turn by {angle} degrees about the centre",
        atol=1e-4,
    )


def check_rotate_about_fixed_centre(fn) -> None:
    """Visible check of ``rotate_about``: the centre stays put, distances to it are kept, points turn by the angle."""
    _compare_fixed_centre(fn, 90.0, (3.0, 1.0), torch.tensor([[2.0, 0.0]], dtype=torch.float64))
    _compare_fixed_centre(
        fn, -30.0, (-2.0, 5.0), torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 1.0]], dtype=torch.float64)
    )
    passed("rotate_about keeps the centre fixed and turns points about it by the angle")


def grade_rotate_about_fixed_centre(fn) -> None:
    """Hidden tests: random angles and centres; the centre is fixed and points turn about it."""
    gen = torch.Generator().manual_seed(105)
    for _ in range(4):
        angle = float(torch.rand((), generator=gen) * 340.0 - 170.0)
        center = tuple((torch.rand(2, generator=gen, dtype=torch.float64) * 40.0 - 20.0).tolist())
        offsets = torch.rand(3, 2, generator=gen, dtype=torch.float64) * 10.0 - 5.0
        _compare_fixed_centre(fn, angle, center, offsets)
    print("rotate_about (fixed centre): hidden tests passed")


def _compare_rotate_about(fn, angle: float, center: tuple) -> None:
    on = f"angle_deg={angle}, center_xy={center}"
    cx, cy = (torch.tensor(v, dtype=torch.float64) for v in center)
    expected = _translation(cx, cy) @ _rotation(torch.tensor(angle, dtype=torch.float64)) @ _translation(-cx, -cy)
    got = call_learner(fn, angle, center, name="rotate_about", on=on)
    _check_dtype(got, torch.get_default_dtype(), fn="rotate_about", on=on, why=_DEFAULT_DTYPE)
    check_close(
        got, expected.to(torch.float32), fn="rotate_about", on=f"{on}, compared with T(c) @ R @ T(-c)", atol=1e-4
    )


def check_rotate_about(fn) -> None:
    """Visible check of ``rotate_about`` against the product T(c) @ R(angle) @ T(-c) of closed forms."""
    _compare_rotate_about(fn, 30.0, (3.0, 1.0))
    _compare_rotate_about(fn, -120.0, (-2.0, 5.0))
    passed("rotate_about equals T(c) @ R(angle) @ T(-c)")


def grade_rotate_about(fn) -> None:
    """Hidden tests of ``rotate_about`` against T(c) @ R @ T(-c) on random angles and centres."""
    gen = torch.Generator().manual_seed(106)
    for _ in range(5):
        angle = float(torch.rand((), generator=gen) * 720.0 - 360.0)
        center = tuple((torch.rand(2, generator=gen, dtype=torch.float64) * 30.0 - 15.0).tolist())
        _compare_rotate_about(fn, angle, center)
    print("rotate_about: hidden tests passed")


# --------------------------------------------------------------------------- 5. invert_affine_by_hand
def _compare_inverse(fn, m: torch.Tensor, on: str) -> None:
    expected = torch.linalg.inv(m.to(torch.float64))
    with _only_2x2_inverses("invert_affine_by_hand"):
        got = call_learner(fn, m.clone(), name="invert_affine_by_hand", on=on)
    tol = 1e-4 if m.dtype == torch.float32 else 1e-10
    _check_dtype(got, m.dtype, fn="invert_affine_by_hand", on=on)
    check_close(
        got,
        expected.to(m.dtype),
        fn="invert_affine_by_hand",
        on=f"{on}, compared with torch.linalg.inv",
        atol=tol,
        rtol=tol,
    )


def check_invert_affine_by_hand(fn) -> None:
    """Visible check of ``invert_affine_by_hand`` against torch.linalg.inv: a translation, a sheared matrix, a batch."""
    shift = _translation(torch.tensor(3.0), torch.tensor(-2.0))
    sheared = _sheared_matrix()
    _compare_inverse(fn, shift, "the translation T(3, -2)")
    _compare_inverse(fn, sheared, "M = T(2, -1) @ R(30) @ Sh(0.5) @ S(2, 0.5)")
    _compare_inverse(fn, torch.stack([sheared, shift]), "a batch (2, 3, 3) of M and T(3, -2)")
    shift64 = _translation(torch.tensor(3.0, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64))
    _compare_inverse(
        fn, torch.stack([_sheared_matrix(torch.float64), shift64]), "the same batch in float64 (the inverse too)"
    )
    passed(
        "invert_affine_by_hand matches torch.linalg.inv on a translation, a sheared matrix and a batch, "
        "float32 and float64"
    )


def grade_invert_affine_by_hand(fn) -> None:
    """Hidden tests of ``invert_affine_by_hand`` against torch.linalg.inv on random affine matrices."""
    gen = torch.Generator().manual_seed(107)
    for batch, dtype in [((), torch.float32), ((6,), torch.float32), ((4,), torch.float64), ((2, 3), torch.float64)]:
        _compare_inverse(fn, _random_affine(gen, batch, dtype), f"random affine matrices, batch {batch}, {dtype}")
    print("invert_affine_by_hand: hidden tests passed")


def _compare_round_trip(fn, m: torch.Tensor, on: str) -> None:
    eye = torch.eye(3, dtype=torch.float64).expand(m.shape)
    last = torch.tensor([0.0, 0.0, 1.0], dtype=m.dtype).expand(m.shape[:-1])
    with _only_2x2_inverses("invert_affine_by_hand"):
        got = call_learner(fn, m.clone(), name="invert_affine_by_hand", on=on)
    _check_dtype(got, m.dtype, fn="invert_affine_by_hand", on=on)
    check_close(got, m, fn="invert_affine_by_hand", on=f"{on} (its shape)", atol=float("inf"))
    tol = 1e-4 if m.dtype == torch.float32 else 1e-10
    g, m64 = got.detach().to(torch.float64), m.to(torch.float64)
    check_close(g @ m64, eye, fn="invert_affine_by_hand", on=f"{on}: inv(M) @ M should be the identity", atol=tol)
    check_close(m64 @ g, eye, fn="invert_affine_by_hand", on=f"{on}: M @ inv(M) should be the identity", atol=tol)
    check_close(
        got[..., 2, :], last, fn="invert_affine_by_hand", on=f"{on}: the last row must stay (0, 0, 1)", atol=0.0
    )


def check_invert_affine_by_hand_round_trip(fn) -> None:
    """Visible check: inv(M) @ M = I on a (2, 2, 3, 3) float64 batch, last row exactly (0, 0, 1), closed form used."""
    sheared = _sheared_matrix(torch.float64)
    shift = _translation(torch.tensor(3.0, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64))
    turn = _rotation(torch.tensor(-60.0, dtype=torch.float64))
    batch = torch.stack([torch.stack([sheared, shift]), torch.stack([turn, shift @ sheared])])
    _compare_round_trip(fn, batch, "a float64 batch of shape (2, 2, 3, 3)")
    passed("invert_affine_by_hand undoes M (inv(M) @ M = I) on a (2, 2, 3, 3) float64 batch, last row (0, 0, 1)")


def grade_invert_affine_by_hand_round_trip(fn) -> None:
    """Hidden tests: round trips on random batches, float32 and float64."""
    gen = torch.Generator().manual_seed(108)
    for batch, dtype in [((5,), torch.float64), ((3, 2), torch.float32), ((1,), torch.float64)]:
        _compare_round_trip(fn, _random_affine(gen, batch, dtype), f"random affine matrices, batch {batch}, {dtype}")
    print("invert_affine_by_hand (round trip): hidden tests passed")


# --------------------------------------------------------------------------- 6. matrix_from_theta
def _compare_matrix_from_theta(fn, theta: torch.Tensor, on: str) -> None:
    bottom = torch.zeros(theta.shape[:-2] + (1, 3), dtype=theta.dtype)
    bottom[..., 0, 2] = 1.0
    expected = torch.cat([theta, bottom], dim=-2)
    keep = theta.clone()
    got = call_learner(fn, theta, name="matrix_from_theta", on=on)
    _check_dtype(got, theta.dtype, fn="matrix_from_theta", on=on)
    check_close(got, expected, fn="matrix_from_theta", on=on, atol=0.0)
    if not torch.equal(theta, keep):
        raise CheckFailed(f"matrix_from_theta on {on}: it changed theta; return a new tensor instead")


def check_matrix_from_theta(fn) -> None:
    """Visible check of ``matrix_from_theta``: the identity theta, one theta (2, 3), float64 batches (2, 2, 3) and
    (1, 2, 2, 3)."""
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    one = torch.tensor([[0.5, -0.2, 0.3], [0.1, 0.8, -0.4]])
    batch = torch.stack([one, identity]).to(torch.float64)
    _compare_matrix_from_theta(fn, identity, "the identity theta [[1, 0, 0], [0, 1, 0]]")
    _compare_matrix_from_theta(fn, one, "theta = [[0.5, -0.2, 0.3], [0.1, 0.8, -0.4]], shape (2, 3)")
    _compare_matrix_from_theta(fn, batch, "a batch of shape (2, 2, 3), float64")
    _compare_matrix_from_theta(fn, batch[None], "a batch of shape (1, 2, 2, 3) (two batch axes: any (..., 2, 3))")
    passed("matrix_from_theta adds the row (0, 0, 1) to single thetas and batches, and keeps the dtype")


def grade_matrix_from_theta(fn) -> None:
    """Hidden tests of ``matrix_from_theta`` on random thetas of several batch shapes and dtypes."""
    gen = torch.Generator().manual_seed(109)
    for shape, dtype in [((4, 2, 3), torch.float32), ((2, 5, 2, 3), torch.float64), ((1, 2, 3), torch.float64)]:
        theta = (torch.rand(shape, generator=gen, dtype=torch.float64) * 4.0 - 2.0).to(dtype)
        _compare_matrix_from_theta(fn, theta, f"random thetas of shape {shape}, {dtype}")
    print("matrix_from_theta: hidden tests passed")
