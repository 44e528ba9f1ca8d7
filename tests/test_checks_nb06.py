"""The checks of notebook 06 (experiments): they pass on the solutions and fail on typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from nbutils import SOLUTIONS, answer_namespace

from stnlib import geometry
from stnlib.checks import CheckFailed, nb06

NB = SOLUTIONS / "06_experiments" / "06_experiments.ipynb"

EXERCISES = {
    "per_class_error": ["per_class_error"],
    "rotation_from_theta": ["rotation_from_theta", "rotation_from_theta_sheared"],
    "residual_transform": ["residual_transform"],
    "angle_difference_deg": ["angle_difference_deg"],
}


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(NB)


# --------------------------------------------------------------------------- the solutions pass
@pytest.mark.parametrize("fn,check", [(fn, c) for fn, checks in EXERCISES.items() for c in checks])
def test_solution_passes(ns, fn, check, capsys):
    getattr(nb06, f"check_{check}")(ns[fn])
    getattr(nb06, f"grade_{check}")(ns[fn])
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "hidden tests passed" in out


@pytest.mark.parametrize("fn,check", [(fn, c) for fn, checks in EXERCISES.items() for c in checks])
def test_references_pass(fn, check):
    """The demo fallbacks are right too (unwrapped: the checks block them while they run)."""
    reference = getattr(nb06, f"{fn}_reference").__wrapped__
    getattr(nb06, f"check_{check}")(reference)
    getattr(nb06, f"grade_{check}")(reference)


@pytest.mark.parametrize("fn,check", [(fn, c) for fn, checks in EXERCISES.items() for c in checks])
def test_references_are_blocked(fn, check):
    """A learner's function that only calls the course's reference scores 0."""
    reference = getattr(nb06, f"{fn}_reference")
    with pytest.raises(CheckFailed, match="is not available here"):
        getattr(nb06, f"check_{check}")(reference)


@pytest.mark.parametrize("fn", EXERCISES)
def test_stubs_fail(fn):
    def stub(*args):
        raise NotImplementedError()

    for check in EXERCISES[fn]:
        with pytest.raises(NotImplementedError):
            getattr(nb06, f"check_{check}")(stub)
        with pytest.raises(NotImplementedError):
            getattr(nb06, f"grade_{check}")(stub)


# --------------------------------------------------------------------------- 1. per_class_error
def _wrong(logits, labels):
    return (logits.argmax(1) != labels).to(logits.dtype)


PER_CLASS_MISTAKES = {
    "overall error, repeated": (lambda lo, la, k: _wrong(lo, la).mean().expand(k).clone(), r"expected .* got"),
    "counted by predicted class": (
        lambda lo, la, k: (
            torch.bincount(lo.argmax(1), weights=_wrong(lo, la), minlength=k).to(lo.dtype)
            / torch.bincount(la, minlength=k).to(lo.dtype)
        ),
        r"expected .* got",
    ),
    "accuracy instead of error": (
        lambda lo, la, k: (
            1
            - torch.bincount(la, weights=_wrong(lo, la), minlength=k).to(lo.dtype)
            / torch.bincount(la, minlength=k).to(lo.dtype)
        ),
        r"expected .* got",
    ),
    "divided by all samples": (
        lambda lo, la, k: torch.bincount(la, weights=_wrong(lo, la), minlength=k).to(lo.dtype) / len(la),
        r"expected .* got",
    ),
    "0 for an absent class": (
        lambda lo, la, k: torch.nan_to_num(
            torch.bincount(la, weights=_wrong(lo, la), minlength=k).to(lo.dtype)
            / torch.bincount(la, minlength=k).to(lo.dtype)
        ),
        r"classes \[3\] have no sample.*should be nan",
    ),
    "one value too few (minlength forgotten)": (
        lambda lo, la, k: torch.bincount(la, weights=_wrong(lo, la)).to(lo.dtype) / torch.bincount(la).to(lo.dtype),
        r"expected shape \(4,\)",
    ),
}


@pytest.mark.parametrize("mistake", PER_CLASS_MISTAKES.values(), ids=PER_CLASS_MISTAKES.keys())
def test_per_class_error_mistakes(mistake):
    fn, match = mistake
    with pytest.raises(CheckFailed, match=match):
        nb06.check_per_class_error(fn)


def test_per_class_error_float32_marks_fail_visibly():
    """.float() on the marks makes a float32 result for float64 logits: the visible check has float64 logits and
    names the dtype with a hint; the grader checks the dtype too."""

    def float_marks(logits, labels, num_classes):
        wrong = (logits.argmax(1) != labels).float()
        return (
            torch.bincount(labels, weights=wrong, minlength=num_classes)
            / torch.bincount(labels, minlength=num_classes).float()
        )

    match = r"float64 logits: expected dtype torch.float64 \(that of logits\), got torch.float32\n  Hint: .*to\(logits.dtype\)"
    with pytest.raises(CheckFailed, match=match):
        nb06.check_per_class_error(float_marks)
    with pytest.raises(CheckFailed, match=r"expected dtype torch.float64"):
        nb06.grade_per_class_error(float_marks)


def test_per_class_error_index_is_the_class():
    """With a class missing in the middle, the index in the message is still the class (not a position among
    the classes that have samples)."""

    def off_for_class_2(logits, labels, num_classes):
        out = nb06.per_class_error_reference.__wrapped__(logits, labels, num_classes)
        out[2] = 0.75
        return out

    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 0.0], [0.1, 0.2, 0.9], [0.0, 4.0, 1.0], [2.0, 1.0, 3.0]])
    labels = torch.tensor([0, 0, 2, 2, 3])  # class 1 has no sample
    with pytest.raises(
        CheckFailed, match=r"classes \[1\] have no sample: nan, shown as 0\): expected 0.5 at index \(2,\)"
    ):
        nb06._compare_per_class(off_for_class_2, logits, labels, 4, "5 samples, class 1 absent")


def test_per_class_error_hand_value():
    # Provenance: written out by hand: class 0 has samples 0 (right) and 1 (wrong), class 1 has 2 (wrong) and 3
    # (right), class 2 has 4 (right); class 3 has none.
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 0.0], [0.1, 0.2, 0.9], [0.0, 4.0, 1.0], [2.0, 1.0, 3.0]])
    got = nb06.per_class_error_reference.__wrapped__(logits, torch.tensor([0, 0, 1, 1, 2]), 4)
    assert got[:3].tolist() == [0.5, 0.5, 0.0] and math.isnan(got[3].item())


# --------------------------------------------------------------------------- 2. rotation_from_theta
def _atan2(y, x):
    return torch.rad2deg(torch.atan2(y, x))


ROTATION_MISTAKES = {
    "radians": (
        lambda t: torch.atan2(t[:, 1, 0] - t[:, 0, 1], t[:, 0, 0] + t[:, 1, 1]),
        r"expected 30 .*got 0.5236.*\n.*\n.*\n  Hint: return degrees, not radians",
    ),
    "atan of a ratio": (
        lambda t: torch.rad2deg(torch.atan((t[:, 1, 0] - t[:, 0, 1]) / (t[:, 0, 0] + t[:, 1, 1]))),
        r"angles \(30, -60, 120(.|\n)*Hint: torch.atan of a ratio only covers \(-90, 90\)",
    ),
    "transposed (sign flipped)": (
        lambda t: _atan2(t[:, 0, 1] - t[:, 1, 0], t[:, 0, 0] + t[:, 1, 1]),
        r"theta = R\(30 deg\)(.|\n)*Hint: the sign is flipped",
    ),
    "swapped x and y": (lambda t: _atan2(t[:, 0, 0] + t[:, 1, 1], t[:, 1, 0] - t[:, 0, 1]), r"theta = R\(30 deg\)"),
    "unbatched (one angle)": (
        lambda t: _atan2(t[0, 1, 0] - t[0, 0, 1], t[0, 0, 0] + t[0, 1, 1]),
        r"expected shape \(1,\), got \(\)",
    ),
}


@pytest.mark.parametrize("mistake", ROTATION_MISTAKES.values(), ids=ROTATION_MISTAKES.keys())
def test_rotation_mistakes(mistake):
    fn, match = mistake
    with pytest.raises(CheckFailed, match=match):
        nb06.check_rotation_from_theta(fn)


def test_rotation_first_column_only_fails_on_shear():
    """atan2(a10, a00) (decompose_theta's angle) is right for s R(phi) but not the closest rotation."""

    def first_column(t):
        return _atan2(t[:, 1, 0], t[:, 0, 0])

    nb06.check_rotation_from_theta(first_column)
    nb06.grade_rotation_from_theta(first_column)
    hint = r"Hint: atan2\(a10, a00\) is the angle of the first column only.*atan2\(a10 - a01, a00 \+ a11\)"
    with pytest.raises(CheckFailed, match=r"(?s)shear \[\[1, 0.5\], \[0, 1\]\].*" + hint):
        nb06.check_rotation_from_theta_sheared(first_column)
    with pytest.raises(CheckFailed, match="(?s)random sheared thetas.*" + hint):
        nb06.grade_rotation_from_theta_sheared(first_column)


def test_rotation_sheared_says_first_column_only_when_that_is_the_fault():
    """Radians on a sheared theta: the hint says radians, and nothing about atan2(a10, a00)."""

    def radians(t):
        return torch.atan2(t[:, 1, 0] - t[:, 0, 1], t[:, 0, 0] + t[:, 1, 1])

    with pytest.raises(CheckFailed, match="Hint: return degrees") as err:
        nb06.check_rotation_from_theta_sheared(radians)
    assert "atan2(a10, a00)" not in str(err.value)


def test_rotation_delegating_to_stnlib_fails():
    with pytest.raises(CheckFailed, match="decompose_theta is not available here"):
        nb06.check_rotation_from_theta(lambda t: geometry.decompose_theta(t).rotation_deg)


def test_closest_rotation_oracle_by_hand():
    # Provenance: a pure shear [[1, k], [0, 1]] has the closest rotation atan2(-k, 2): for k = 0.5, -14.036 degrees.
    theta = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    assert nb06._closest_rotation_deg(theta).item() == pytest.approx(math.degrees(math.atan2(-0.5, 2.0)))


# --------------------------------------------------------------------------- 3. residual_transform
def _split(theta):
    return theta[:, :, :2], theta[:, :, 2:]


RESIDUAL_MISTAKES = {
    "wrong order (theta_true first)": lambda tl, tt: nb06.residual_transform_reference.__wrapped__(tt, tl),
    "translations added": lambda tl, tt: torch.cat([_split(tt)[0] @ _split(tl)[0], _split(tl)[1] + _split(tt)[1]], 2),
    "inner translation forgotten": lambda tl, tt: torch.cat([_split(tt)[0] @ _split(tl)[0], _split(tt)[1]], 2),
    "elementwise product": lambda tl, tt: torch.cat(
        [_split(tt)[0] * _split(tl)[0], _split(tt)[0] @ _split(tl)[1] + _split(tt)[1]], 2
    ),
    "inverse of theta_learned": lambda tl, tt: nb06.residual_transform_reference.__wrapped__(
        geometry.invert_affine.__wrapped__(tl), tt
    ),
}


@pytest.mark.parametrize("fn", RESIDUAL_MISTAKES.values(), ids=RESIDUAL_MISTAKES.keys())
def test_residual_mistakes(fn):
    with pytest.raises(CheckFailed, match="residual_transform on"):
        nb06.check_residual_transform(fn)


def test_residual_float32_result_fails_visibly():
    """A result built with torch.zeros (float32): the visible check has a float64 case and names the dtype."""

    def zeros_filled(tl, tt):
        out = torch.zeros(len(tl), 2, 3)  # float32 whatever the thetas are
        out[:, :, :2] = _split(tt)[0] @ _split(tl)[0]
        out[:, :, 2:] = _split(tt)[0] @ _split(tl)[1] + _split(tt)[1]
        return out

    with pytest.raises(
        CheckFailed, match=r"(?s)float64: expected dtype torch.float64 \(that of the thetas\), got torch.float32.*Hint"
    ):
        nb06.check_residual_transform(zeros_filled)


def test_rotation_float32_result_fails_the_first_check():
    """The angle computed in float32: the scaled-rotation check (the first one after the exercise) has a float64
    case and says so, before the hidden tests do."""

    def float32_angle(t):
        t = t.float()
        return torch.rad2deg(torch.atan2(t[:, 1, 0] - t[:, 0, 1], t[:, 0, 0] + t[:, 1, 1]))

    with pytest.raises(CheckFailed, match=r"in float64 .*expected dtype torch.float64 \(that of theta\)"):
        nb06.check_rotation_from_theta(float32_angle)


def test_rotation_and_difference_dtype_named():
    def rotation_float32(t):
        return torch.rad2deg(torch.atan2(t[:, 1, 0] - t[:, 0, 1], t[:, 0, 0] + t[:, 1, 1])).float()

    with pytest.raises(CheckFailed, match=r"expected dtype torch.float64 \(that of theta\), got torch.float32"):
        nb06.check_rotation_from_theta_sheared(rotation_float32)

    def difference_float32(a, b):
        return (torch.remainder(a - b + 180.0, 360.0) - 180.0).float()

    with pytest.raises(CheckFailed, match=r"float64: .*expected dtype torch.float64 \(that of a and b\)"):
        nb06.check_angle_difference_deg(difference_float32)


def test_residual_delegating_to_stnlib_fails():
    def with_stnlib(tl, tt):
        return geometry.matrix_to_theta(geometry.compose(geometry.theta_to_matrix(tt), geometry.theta_to_matrix(tl)))

    with pytest.raises(CheckFailed, match="is not available here"):
        nb06.check_residual_transform(with_stnlib)


def test_residual_of_an_exact_undo_is_identity():
    """The reference composes in the data's sense: invert_affine(theta_true) as the learned theta gives I."""
    theta_true = geometry.compose_theta(rotation_deg=25.0, scale_x=1.3, scale_y=1.3, tx=0.2, ty=-0.1)[None]
    residual = nb06.residual_transform_reference.__wrapped__(geometry.invert_affine(theta_true), theta_true)
    torch.testing.assert_close(residual, torch.eye(2, 3)[None], atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- 4. angle_difference_deg
DIFFERENCE_MISTAKES = {
    "not wrapped": (lambda a, b: a - b, r"170 - \(-170\) is -20"),
    "wrapped into [0, 360)": (lambda a, b: torch.remainder(a - b, 360.0), r"170 - \(-170\) is -20"),
    "fmod (negative remainders)": (lambda a, b: torch.fmod(a - b + 180.0, 360.0) - 180.0, r"170 - \(-170\) is -20"),
    "b - a": (lambda a, b: torch.remainder(b - a + 180.0, 360.0) - 180.0, r"a = 10, b = -20 \(expected 30\)"),
    "absolute difference": (lambda a, b: (torch.remainder(a - b + 180.0, 360.0) - 180.0).abs(), r"170 - \(-170\)"),
}


@pytest.mark.parametrize("mistake", DIFFERENCE_MISTAKES.values(), ids=DIFFERENCE_MISTAKES.keys())
def test_angle_difference_mistakes(mistake):
    fn, match = mistake
    with pytest.raises(CheckFailed, match=match):
        nb06.check_angle_difference_deg(fn)


def _via_atan2(a, b):
    rad = torch.deg2rad(a - b)
    return torch.rad2deg(torch.atan2(torch.sin(rad), torch.cos(rad)))


SEAM_MISTAKES = {
    "atan2 of sine and cosine": _via_atan2,
    "wrapped the other way round, into (-180, 180]": lambda a, b: -(torch.remainder(b - a + 180.0, 360.0) - 180.0),
    "180 - remainder(180 - d, 360)": lambda a, b: 180.0 - torch.remainder(180.0 - (a - b), 360.0),
}


@pytest.mark.parametrize("fn", SEAM_MISTAKES.values(), ids=SEAM_MISTAKES.keys())
def test_angle_difference_plus_180_fails_visibly_at_the_seam(fn):
    """Answers in (-180, 180] instead of [-180, 180) agree everywhere but at the seam: the visible check has the seam
    (float32 and float64) and says what is wrong; the grader rejects them too."""
    seam = (
        r"(?s)on the seam, float(32|64).*expected -180 at index.*got 180.*Hint: \[-180, 180\) holds -180 and not \+180"
    )
    with pytest.raises(CheckFailed, match=seam):
        nb06.check_angle_difference_deg(fn)
    with pytest.raises(CheckFailed, match=r"(?s)the seam.*Hint: \[-180, 180\) holds -180"):
        nb06.grade_angle_difference_deg(fn)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angle_difference_seam_in_each_dtype(dtype):
    """atan2 rounds the seam to +180 or -180 depending on the dtype and the sign of a - b: each dtype's case alone
    catches it (float32 deg2rad(-180) is a little below -pi, float64's a little above)."""
    with pytest.raises(CheckFailed, match="Hint: \\[-180, 180\\) holds -180"):
        nb06._seam_case(_via_atan2, dtype, 1e-4 if dtype == torch.float32 else 1e-9)
    nb06._seam_case(nb06.angle_difference_deg_reference.__wrapped__, dtype, 0.0)


def test_angle_difference_oracle_at_the_seam_by_hand():
    # Provenance: 180 - 0, -180 - 0, 540 - 0 and 0 - 180 all wrap to -180 in [-180, 180); 179 - 0 stays 179.
    a = torch.tensor([180.0, -180.0, 540.0, 0.0, 179.0], dtype=torch.float64)
    b = torch.tensor([0.0, 0.0, 0.0, 180.0, 0.0], dtype=torch.float64)
    assert nb06._difference_oracle(a, b).tolist() == [-180.0, -180.0, -180.0, -180.0, pytest.approx(179.0)]


def test_angle_difference_broadcast_is_checked_visibly():
    def no_broadcast(a, b):
        if a.shape != b.shape:
            raise ValueError("shapes differ")
        return torch.remainder(a - b + 180.0, 360.0) - 180.0

    with pytest.raises(CheckFailed, match=r"shape \(2, 3\) and b .* of shape \(3,\).*raised ValueError"):
        nb06.check_angle_difference_deg(no_broadcast)
    with pytest.raises(CheckFailed, match=r"broadcast.*raised ValueError"):
        nb06.grade_angle_difference_deg(no_broadcast)

    def element_by_element(a, b):  # a loop over a's first axis, pairing it with b's
        return torch.stack([torch.remainder(a[i] - b[i] + 180.0, 360.0) - 180.0 for i in range(len(a))])

    with pytest.raises(CheckFailed, match=r"shape \(2, 3\) and b .* as in a - b: expected 110 at index \(1, 0\)"):
        nb06.check_angle_difference_deg(element_by_element)
