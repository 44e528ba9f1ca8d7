"""Tests of stnlib.checks.nb01: the solution of notebook 01 passes every check, typical mistakes
and delegating to the reference functions fail with a message that says what is wrong."""

from __future__ import annotations

import math

import pytest
import torch
from nbutils import SOLUTIONS, answer_namespace

from stnlib import geometry
from stnlib.checks import CheckFailed, nb01

NOTEBOOK = SOLUTIONS / "01_affine_matrices" / "01_affine_matrices.ipynb"

# (function name in the notebook, visible check, hidden grader)
PAIRS = [
    ("to_homogeneous", nb01.check_to_homogeneous, nb01.grade_to_homogeneous),
    ("from_homogeneous", nb01.check_from_homogeneous, nb01.grade_from_homogeneous),
    ("rotation_by_hand", nb01.check_rotation_by_hand, nb01.grade_rotation_by_hand),
    ("rotation_by_hand", nb01.check_rotation_by_hand_batch, nb01.grade_rotation_by_hand_batch),
    ("rotate_about", nb01.check_rotate_about_fixed_centre, nb01.grade_rotate_about_fixed_centre),
    ("rotate_about", nb01.check_rotate_about, nb01.grade_rotate_about),
    ("invert_affine_by_hand", nb01.check_invert_affine_by_hand, nb01.grade_invert_affine_by_hand),
    ("invert_affine_by_hand", nb01.check_invert_affine_by_hand_round_trip, nb01.grade_invert_affine_by_hand_round_trip),
    ("matrix_from_theta", nb01.check_matrix_from_theta, nb01.grade_matrix_from_theta),
]
IDS = [check.__name__ for _, check, _ in PAIRS]


@pytest.fixture(scope="module")
def solution():
    return answer_namespace(NOTEBOOK)


def _fails(check, fn, match: str) -> None:
    """``check`` (a visible check or a hidden grader) rejects ``fn`` with a message matching ``match``."""
    with pytest.raises(CheckFailed, match=match):
        check(fn)


# --------------------------------------------------------------------------- the solution passes
def test_answer_cells_define_the_functions(solution):
    for name in {name for name, _, _ in PAIRS}:
        assert callable(solution[name]), name


@pytest.mark.parametrize("name, check, grade", PAIRS, ids=IDS)
def test_solution_passes(solution, name, check, grade, capsys):
    check(solution[name])
    grade(solution[name])
    assert capsys.readouterr().out.startswith("OK: ")


@pytest.mark.parametrize("name, check, grade", PAIRS, ids=IDS)
def test_stub_raises_not_implemented(name, check, grade):
    def stub(*args):
        raise NotImplementedError()

    for fn in (check, grade):
        with pytest.raises(NotImplementedError):
            fn(stub)


# --------------------------------------------------------------------------- 1. to_homogeneous
def test_to_homogeneous_appending_zero_fails():
    def zero(p):
        return torch.cat([p, torch.zeros_like(p[..., :1])], dim=-1)

    _fails(nb01.check_to_homogeneous, zero, r"expected 1 at index \(2,\), got 0")
    _fails(nb01.grade_to_homogeneous, zero, "expected 1")


def test_to_homogeneous_only_for_lists_fails():
    def lists_only(p):
        return torch.cat([p, torch.ones(p.shape[0], 1)], dim=1)

    _fails(nb01.check_to_homogeneous, lists_only, r"one point .*: raised")


def test_to_homogeneous_dtype_lost_fails():
    def float32(p):
        return torch.cat([p, torch.ones_like(p[..., :1])], dim=-1).float()

    _fails(nb01.check_to_homogeneous, float32, "expected dtype torch.float64, got torch.float32")


def test_to_homogeneous_in_place_fails():
    def in_place(p):
        out = torch.cat([p, torch.ones_like(p[..., :1])], dim=-1)
        p.zero_()
        return out

    _fails(nb01.check_to_homogeneous, in_place, "changed its input")


# --------------------------------------------------------------------------- 2. from_homogeneous
def test_from_homogeneous_dropping_w_fails():
    _fails(
        nb01.check_from_homogeneous, lambda ph: ph[..., :2].clone(), r"\(4, -2, 2\).*expected 2 at index \(0,\), got 4"
    )
    _fails(nb01.grade_from_homogeneous, lambda ph: ph[..., :2].clone(), "expected")


def test_from_homogeneous_broadcasting_bug_fails():
    # points_h[..., 2] has lost its last axis: with two points it divides column j by the w of point j.
    _fails(nb01.check_from_homogeneous, lambda ph: ph[..., :2] / ph[..., 2], "2 points of shape")


# --------------------------------------------------------------------------- 3. rotation_by_hand
def _rotation(angle_deg, *, sign=1.0, unit=math.pi / 180.0):
    a = torch.as_tensor(angle_deg)
    if not a.is_floating_point():
        a = a.to(torch.get_default_dtype())
    c, s = torch.cos(a * unit), sign * torch.sin(a * unit)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def test_rotation_transposed_fails():
    transposed = lambda a: _rotation(a, sign=-1.0)  # noqa: E731 - turns the wrong way
    _fails(nb01.check_rotation_by_hand, transposed, r"angle_deg=30.0: expected -0.5 at index \(0, 1\), got 0.5")
    _fails(nb01.check_rotation_by_hand_batch, transposed, "expected")
    _fails(nb01.grade_rotation_by_hand, transposed, "expected")
    _fails(nb01.grade_rotation_by_hand_batch, transposed, "expected")


def test_rotation_in_radians_fails():
    radians = lambda a: _rotation(a, unit=1.0)  # noqa: E731 - forgot to convert degrees
    _fails(nb01.check_rotation_by_hand, radians, "angle_deg=30.0")


def test_rotation_single_angle_only_fails():
    def single(a):
        r = math.radians(float(a))
        return torch.tensor([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])

    nb01.check_rotation_by_hand(single)  # fine for floats ...
    _fails(nb01.check_rotation_by_hand_batch, single, r"angle_deg=tensor\(\[0, 30, -90, 200\]\): raised")


def test_rotation_dtype_lost_fails():
    _fails(
        nb01.check_rotation_by_hand_batch,
        lambda a: _rotation(a).float(),
        "expected dtype torch.float64, got torch.float32",
    )


def test_rotation_float64_for_a_python_float_names_the_default_dtype():
    """For a Python float the expected dtype is torch's default: the message says so, not "keep the input's dtype"."""

    def float64(angle_deg):
        return _rotation(torch.tensor(angle_deg, dtype=torch.float64))

    with pytest.raises(
        CheckFailed, match=r"expected dtype torch.float32, got torch.float64 \(the input is a Python float"
    ) as err:
        nb01.check_rotation_by_hand(float64)
    assert "keep the input's dtype" not in str(err.value)

    def rotate_about_float64(angle_deg, center_xy):
        return (_t(*center_xy) @ _rotation(float(angle_deg)) @ _t(-center_xy[0], -center_xy[1])).double()

    with pytest.raises(CheckFailed, match=r"rotate_about on .*got torch.float64 \(the input is a Python float"):
        nb01.check_rotate_about(rotate_about_float64)


# --------------------------------------------------------------------------- 4. rotate_about
def _t(tx, ty):
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def test_rotate_about_wrong_order_fails():
    wrong = lambda a, c: _t(-c[0], -c[1]) @ _rotation(float(a)) @ _t(c[0], c[1])  # noqa: E731
    _fails(nb01.check_rotate_about_fixed_centre, wrong, r"the centre \(3.0, 1.0\) must not move")
    _fails(nb01.check_rotate_about, wrong, r"T\(c\) @ R @ T\(-c\)")
    _fails(nb01.grade_rotate_about_fixed_centre, wrong, "must not move")
    _fails(nb01.grade_rotate_about, wrong, "expected")


def test_rotate_about_origin_fails():
    about_origin = lambda a, c: _rotation(float(a))  # noqa: E731
    _fails(nb01.check_rotate_about_fixed_centre, about_origin, "must not move")


def test_rotate_about_wrong_direction_fails():
    backwards = lambda a, c: _t(c[0], c[1]) @ _rotation(-float(a)) @ _t(-c[0], -c[1])  # noqa: E731
    _fails(nb01.check_rotate_about_fixed_centre, backwards, "must turn by 90.0 degrees")


# --------------------------------------------------------------------------- 5. invert_affine_by_hand
def _closed_form(linear_inverse, shift):
    def invert(m):
        a_inv = linear_inverse(m[..., :2, :2])
        top = torch.cat([a_inv, shift(a_inv, m[..., :2, 2:])], dim=-1)
        return torch.cat([top, m[..., 2:, :]], dim=-2)

    return invert


def test_invert_transpose_instead_of_inverse_fails():
    transposed = _closed_form(lambda a: a.transpose(-1, -2), lambda a_inv, t: -(a_inv @ t))
    nb01_msg = r"T\(2, -1\) @ R\(30\) @ Sh\(0.5\) @ S\(2, 0.5\), compared with torch.linalg.inv"
    _fails(nb01.check_invert_affine_by_hand, transposed, nb01_msg)
    _fails(nb01.check_invert_affine_by_hand_round_trip, transposed, r"inv\(M\) @ M should be the identity")
    _fails(nb01.grade_invert_affine_by_hand, transposed, "expected")


def test_invert_forgetting_a_inverse_on_shift_fails():
    minus_t = _closed_form(torch.linalg.inv, lambda a_inv, t: -t)
    _fails(nb01.check_invert_affine_by_hand, minus_t, "expected")
    _fails(nb01.grade_invert_affine_by_hand_round_trip, minus_t, "should be the identity")


def test_invert_float32_result_fails_the_first_check():
    """A float32 inverse of a float64 matrix: the first check after the exercise has a float64 case."""
    as_float32 = _closed_form(lambda a: torch.linalg.inv(a.float()), lambda a_inv, t: -(a_inv @ t.float()))
    _fails(nb01.check_invert_affine_by_hand, as_float32, r"in float64 \(the inverse too\).*max \|diff\|")


def test_invert_whole_matrix_with_linalg_is_refused():
    # looked up when called, as a learner's code would (an alias taken earlier is not caught)
    for whole in (lambda m: torch.linalg.inv(m), lambda m: torch.inverse(m), lambda m: m.inverse()):
        _fails(nb01.check_invert_affine_by_hand, whole, "use the closed form")
        _fails(nb01.check_invert_affine_by_hand_round_trip, whole, "use the closed form")
        _fails(nb01.grade_invert_affine_by_hand, whole, "use the closed form")


def test_invert_2x2_formula_without_linalg_passes():
    def by_formula(m):
        a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
        det = a * d - b * c
        a_inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
        top = torch.cat([a_inv, -(a_inv @ m[..., :2, 2:])], dim=-1)
        return torch.cat([top, m[..., 2:, :]], dim=-2)

    nb01.check_invert_affine_by_hand(by_formula)
    nb01.check_invert_affine_by_hand_round_trip(by_formula)
    nb01.grade_invert_affine_by_hand(by_formula)
    nb01.grade_invert_affine_by_hand_round_trip(by_formula)


def test_inverse_guard_is_removed_afterwards():
    with pytest.raises(CheckFailed):
        nb01.check_invert_affine_by_hand(lambda m: torch.linalg.inv(m))
    assert torch.allclose(torch.linalg.inv(2.0 * torch.eye(3)), 0.5 * torch.eye(3))
    assert torch.allclose(torch.eye(3).inverse(), torch.eye(3))


# --------------------------------------------------------------------------- 6. matrix_from_theta
def test_matrix_from_theta_zero_row_fails():
    zero_row = lambda th: torch.cat([th, torch.zeros_like(th[..., :1, :])], dim=-2)  # noqa: E731
    _fails(nb01.check_matrix_from_theta, zero_row, r"identity theta .*: expected 1 at index \(2, 2\), got 0")
    _fails(nb01.grade_matrix_from_theta, zero_row, "expected 1")


def test_matrix_from_theta_unbatched_eye_fails():
    def eye(th):
        m = torch.eye(3)
        m[:2] = th
        return m

    _fails(nb01.check_matrix_from_theta, eye, r"batch of shape \(2, 2, 3\), float64: raised")


def test_matrix_from_theta_one_batch_axis_only_fails():
    """A bottom row built for (B, 2, 3) only: the visible check has a batch with two batch axes."""

    def one_batch_axis(th):
        if th.dim() == 2:
            return torch.cat([th, torch.tensor([[0.0, 0.0, 1.0]], dtype=th.dtype)], dim=0)
        bottom = torch.zeros(len(th), 1, 3, dtype=th.dtype)
        bottom[:, 0, 2] = 1.0
        return torch.cat([th, bottom], dim=1)

    _fails(
        nb01.check_matrix_from_theta, one_batch_axis, r"shape \(1, 2, 2, 3\) \(two batch axes.*: raised RuntimeError"
    )


def test_matrix_from_theta_in_place_fails():
    def in_place(th):
        out = torch.cat([th, torch.zeros_like(th[..., :1, :])], dim=-2)
        out[..., 2, 2] = 1.0
        th.zero_()
        return out

    _fails(nb01.check_matrix_from_theta, in_place, "changed theta")


# --------------------------------------------------------------------------- delegating to the references
DELEGATES = [
    (nb01.check_to_homogeneous, nb01.to_homogeneous_reference),
    (nb01.check_from_homogeneous, nb01.from_homogeneous_reference),
    (nb01.check_rotation_by_hand, geometry.rotation_matrix),
    (nb01.grade_rotation_by_hand_batch, geometry.rotation_matrix),
    (nb01.check_rotate_about, lambda a, c: geometry.about_point(geometry.rotation_matrix(a), c)),
    (nb01.check_invert_affine_by_hand, geometry.invert_affine),
    (nb01.grade_invert_affine_by_hand_round_trip, geometry.invert_affine),
    (nb01.check_matrix_from_theta, geometry.theta_to_matrix),
]


@pytest.mark.parametrize("check, delegate", DELEGATES, ids=[c.__name__ for c, _ in DELEGATES])
def test_delegating_to_stnlib_fails(check, delegate):
    with pytest.raises((RuntimeError, CheckFailed), match="is not available"):
        check(delegate)


def test_references_work_outside_checks():
    p = torch.tensor([[4.0, -2.0, 2.0]])
    assert torch.equal(nb01.from_homogeneous_reference(p), torch.tensor([[2.0, -1.0]]))
    assert torch.equal(nb01.to_homogeneous_reference(torch.tensor([2.0, -1.0])), torch.tensor([2.0, -1.0, 1.0]))
