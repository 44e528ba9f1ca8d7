"""Checks for notebook 06 · Experiments (``solutions/06_experiments/06_experiments.ipynb``).

Exercises and their checks (``check_*`` visible, ``grade_*`` hidden):

1. ``per_class_error(logits, labels, num_classes)``: (N, C), (N,) -> (num_classes,), the error
   rate within each true class, NaN for a class with no sample.
2. ``rotation_from_theta(theta)``: (N, 2, 3) -> (N,), the angle in degrees of the rotation
   closest to theta's 2x2 part (``check_rotation_from_theta`` on rotations times a scale,
   ``check_rotation_from_theta_sheared`` on general matrices).
3. ``residual_transform(theta_learned, theta_true)``: (N, 2, 3), (N, 2, 3) -> (N, 2, 3), the
   theta of "distort with theta_true, then the spatial transformer with theta_learned".
4. ``angle_difference_deg(a, b)``: (...), (...) -> (...), a - b wrapped into [-180, 180).

Every expected value is computed first from an independent formulation (a loop over classes
with masks; the polar decomposition by ``torch.linalg.svd``; mapping points through one theta
and then the other; ``torch.atan2`` of sine and cosine), then the learner's function is called
while torch's and stnlib's reference ops are switched off
(:func:`~stnlib.checks.common.reference_ops_blocked`). The notebook's demo cells fall back on the
``*_reference`` functions below until an exercise is done; these too are switched off during checks.
"""

from __future__ import annotations

import math

import torch

from ..blocking import reference
from .common import CheckFailed, call_learner, check_close, passed

__all__ = [
    "per_class_error_reference",
    "rotation_from_theta_reference",
    "residual_transform_reference",
    "angle_difference_deg_reference",
    "check_per_class_error",
    "grade_per_class_error",
    "check_rotation_from_theta",
    "grade_rotation_from_theta",
    "check_rotation_from_theta_sheared",
    "grade_rotation_from_theta_sheared",
    "check_residual_transform",
    "grade_residual_transform",
    "check_angle_difference_deg",
    "grade_angle_difference_deg",
]


# --------------------------------------------------------------------------- demo fallbacks
@reference
def per_class_error_reference(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, C) logits, (N,) labels -> (num_classes,) error rate per true class (NaN if absent).

    Example:
        >>> per_class_error_reference(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 0, 1]), 2)
        tensor([0.5000, 1.0000])
    """
    wrong = (logits.argmax(dim=1) != labels).to(logits.dtype)
    errors = torch.bincount(labels, weights=wrong, minlength=num_classes)[:num_classes]
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes].to(logits.dtype)
    return (errors / counts).to(logits.dtype)  # 0 / 0 = NaN for a class with no sample


@reference
def rotation_from_theta_reference(theta: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) -> (N,) degrees: the rotation closest to theta's 2x2 part, in (-180, 180].

    Example:
        >>> rotation_from_theta_reference(torch.tensor([[[0.0, -2.0, 0.3], [2.0, 0.0, 0.1]]]))
        tensor([90.])
    """
    a = theta[..., :2, :2]
    return torch.rad2deg(torch.atan2(a[..., 1, 0] - a[..., 0, 1], a[..., 0, 0] + a[..., 1, 1]))


@reference
def residual_transform_reference(theta_learned: torch.Tensor, theta_true: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3), (N, 2, 3) -> (N, 2, 3): p -> theta_true(theta_learned(p)).

    Example:
        >>> shift = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
        >>> back = torch.tensor([[[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]])
        >>> residual_transform_reference(back, shift)
        tensor([[[1., 0., 0.],
                 [0., 1., 0.]]])
    """
    a_true, t_true = theta_true[..., :2, :2], theta_true[..., :2, 2:]
    a_learned, t_learned = theta_learned[..., :2, :2], theta_learned[..., :2, 2:]
    return torch.cat([a_true @ a_learned, a_true @ t_learned + t_true], dim=-1)


@reference
def angle_difference_deg_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b in degrees, wrapped into [-180, 180); any (broadcastable) shapes.

    Example:
        >>> angle_difference_deg_reference(torch.tensor([170.0, -30.0]), torch.tensor([-170.0, 20.0]))
        tensor([-20., -50.])
    """
    return torch.remainder(a - b + 180.0, 360.0) - 180.0


# --------------------------------------------------------------------------- helpers
def _rotation_2x2(angle_deg: torch.Tensor) -> torch.Tensor:
    """Oracle: (..., 2, 2) rotation [[cos, -sin], [sin, cos]] from torch.cos / torch.sin (degrees)."""
    rad = angle_deg * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _check_dtype(got, dtype: torch.dtype, *, fn: str, on: str, inputs: str, hint: str | None = None) -> None:
    """Raise CheckFailed if ``got`` is a floating tensor less precise than the inputs' dtype (before its values: a
    float32 result cannot hold float64 answers, and "expected 0.3, got 0.3" would not say why)."""
    if (
        isinstance(got, torch.Tensor)
        and got.is_floating_point()
        and torch.finfo(got.dtype).eps > torch.finfo(dtype).eps
    ):
        hint = hint or (
            "compute with the inputs' own entries; torch.tensor(...) of Python numbers and torch.zeros(...) without "
            "dtype= are float32, and .float() makes float32"
        )
        raise CheckFailed(f"{fn} on {on}: expected dtype {dtype} (that of {inputs}), got {got.dtype}\n  Hint: {hint}")


def _theta(linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) and (..., 2) -> (..., 2, 3)."""
    return torch.cat([linear, shift.unsqueeze(-1)], dim=-1)


# --------------------------------------------------------------------------- 1. per_class_error
def _per_class_oracle(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A loop over the classes with boolean masks (NaN where a class has no sample)."""
    predicted = torch.argmax(logits, dim=1)
    out = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for k in range(num_classes):
        mask = labels == k
        if mask.any():
            out[k] = (predicted[mask] != k).double().mean()
    return out


def _compare_per_class(fn, logits, labels, num_classes, on: str) -> None:
    expected = _per_class_oracle(logits, labels, num_classes)
    got = call_learner(fn, logits.clone(), labels.clone(), num_classes, name="per_class_error", on=on)
    name = "per_class_error"
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name} on {on}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != (num_classes,):
        raise CheckFailed(
            f"{name} on {on}: expected shape ({num_classes},), one error rate per class, got shape {tuple(got.shape)}"
        )
    if not got.is_floating_point():
        raise CheckFailed(f"{name} on {on}: expected a floating-point tensor, got {got.dtype}")
    _check_dtype(
        got,
        logits.dtype,
        fn=name,
        on=on,
        inputs="logits",
        hint="turn the marks and the counts into numbers with .to(logits.dtype); .float() makes float32",
    )
    got_d = got.detach().double()
    missing = torch.isnan(expected)
    absent = torch.nonzero(missing).flatten().tolist()
    if not torch.equal(torch.isnan(got_d), missing):
        raise CheckFailed(
            f"{name} on {on}: classes {absent} have no sample, so their error rate is undefined and should be nan "
            f"(0 / 0); every other class should be a number. Got {[round(v + 0.0, 4) for v in got_d.tolist()]}"
        )
    # Compare all classes, so that an index in the message is the class; the nan of absent classes agree (above)
    # and are compared as 0.
    check_close(
        torch.where(missing, 0.0, got_d),
        torch.where(missing, 0.0, expected),
        fn=name,
        on=on
        + (f" (index = class; classes {absent} have no sample: nan, shown as 0)" if absent else " (index = class)"),
        atol=1e-6,
    )


def check_per_class_error(fn) -> None:
    """Visible check of ``per_class_error``: a hand-sized case, then 40 samples of 4 classes, one absent."""
    # predictions 0, 1, 1, 1, 2, 2 for labels 0, 0, 1, 1, 1, 2: samples 1 and 4 are wrong
    logits = torch.tensor(
        [[3.0, 1.0, 0.0], [0.5, 2.0, 0.0], [0.1, 0.9, 0.2], [0.0, 4.0, 1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]
    )
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    _compare_per_class(
        fn,
        logits,
        labels,
        3,
        "6 samples of 3 classes: class 0 has 1 of 2 wrong, class 1 has 1 of 3, class 2 has 0 of 1",
    )
    gen = torch.Generator().manual_seed(601)
    labels = torch.tensor([0, 1, 2] * 13 + [1])  # class 3 has no sample; classes have 13, 14, 13, 0
    logits = torch.randn(40, 4, generator=gen)
    logits[torch.arange(40), labels] += 1.0  # better than chance, not perfect
    _compare_per_class(fn, logits, labels, 4, "40 samples, 4 classes of 13, 14, 13 and 0 samples")
    _compare_per_class(fn, logits.double(), labels, 4, "the same 40 samples with float64 logits")
    passed(
        "per_class_error gives each class's own error rate (wrong / samples of that class), nan for an absent class, "
        "in the dtype of the logits"
    )


def grade_per_class_error(fn) -> None:
    """Hidden tests of ``per_class_error``: random batches, float32 and float64, unbalanced classes, absent classes."""
    gen = torch.Generator().manual_seed(602)
    for n, classes, num_classes, dtype in [
        (200, 10, 10, torch.float32),
        (57, 5, 7, torch.float64),
        (3, 3, 3, torch.float32),
    ]:
        labels = torch.randint(0, classes, (n,), generator=gen)
        logits = torch.randn(n, num_classes, generator=gen, dtype=torch.float64).to(dtype)
        logits[torch.arange(n), labels] += 0.8
        _compare_per_class(
            fn, logits, labels, num_classes, f"{n} random samples of {classes} of {num_classes} classes, {dtype}"
        )
    print("per_class_error: hidden tests passed")


# --------------------------------------------------------------------------- 2. rotation_from_theta
def _compare_rotation(fn, theta: torch.Tensor, expected: torch.Tensor, on: str, atol: float, mistakes=()) -> None:
    got = call_learner(fn, theta.clone(), name="rotation_from_theta", on=on)
    _check_dtype(got, theta.dtype, fn="rotation_from_theta", on=on, inputs="theta")
    expected = expected.to(theta.dtype)
    mistakes = [
        *mistakes,
        (torch.deg2rad(expected), "return degrees, not radians (torch.rad2deg)"),
        (-expected, "the sign is flipped: the sine is a10 - a01 (row 1, column 0 minus row 0, column 1)"),
        (
            torch.remainder(expected + 90.0, 180.0) - 90.0,
            "torch.atan of a ratio only covers (-90, 90) degrees: use torch.atan2(sine, cosine)",
        ),
    ]
    check_close(got, expected, fn="rotation_from_theta", on=on, atol=atol, mistakes=mistakes)


def _similarities(angles: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    return _theta(scales[:, None, None] * _rotation_2x2(angles), shifts)


def check_rotation_from_theta(fn) -> None:
    """Visible check of ``rotation_from_theta`` on scaled rotations with a translation, angles in all quadrants."""
    angles = torch.tensor([30.0, -60.0, 120.0, -150.0, 0.0], dtype=torch.float64)
    scales = torch.tensor([1.0, 0.5, 2.0, 1.3, 0.8], dtype=torch.float64)
    shifts = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-1.0, 0.5], [0.7, 0.7], [0.2, 0.4]], dtype=torch.float64)
    theta64 = _similarities(angles, scales, shifts)
    theta = theta64.float()
    _compare_rotation(fn, theta[:1], angles[:1], "theta = R(30 deg) (a batch of 1), float32", 1e-4)
    _compare_rotation(
        fn,
        theta,
        angles,
        "5 thetas s * R(angle) plus a shift, angles (30, -60, 120, -150, 0), scales (1, 0.5, 2, 1.3, 0.8)",
        1e-4,
    )
    _compare_rotation(fn, theta64, angles, "the same 5 thetas in float64 (the result should be float64 too)", 1e-9)
    passed(
        "rotation_from_theta reads the angle of s * R(angle) in degrees, in every quadrant, whatever s and the shift, "
        "in theta's dtype"
    )


def grade_rotation_from_theta(fn) -> None:
    """Hidden tests of ``rotation_from_theta`` on random scaled rotations, float32 and float64."""
    gen = torch.Generator().manual_seed(603)
    for n, dtype in [(17, torch.float32), (9, torch.float64)]:
        angles = torch.rand(n, generator=gen, dtype=torch.float64) * 356.0 - 178.0
        scales = torch.rand(n, generator=gen, dtype=torch.float64) * 2.0 + 0.2
        shifts = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        theta = _similarities(angles, scales, shifts).to(dtype)
        _compare_rotation(
            fn, theta, angles, f"{n} random scaled rotations, {dtype}", 1e-3 if dtype == torch.float32 else 1e-9
        )
    print("rotation_from_theta: hidden tests passed")


def _closest_rotation_deg(theta: torch.Tensor) -> torch.Tensor:
    """Oracle: the polar decomposition A = R P by SVD, R = U V^T (det(A) > 0), angle of R in degrees."""
    u, _, vh = torch.linalg.svd(theta[..., :2, :2].double())
    r = u @ vh
    return torch.rad2deg(torch.atan2(r[..., 1, 0], r[..., 0, 0]))


def _sheared(gen, n: int) -> torch.Tensor:
    """Random (n, 2, 3) thetas R(a) @ shear @ diag(sx, sy) with sx, sy > 0 (so det > 0), float64."""
    angles = torch.rand(n, generator=gen, dtype=torch.float64) * 340.0 - 170.0
    shear = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    shear[:, 0, 1] = torch.rand(n, generator=gen, dtype=torch.float64) * 1.2 - 0.6
    scale = torch.diag_embed(torch.rand(n, 2, generator=gen, dtype=torch.float64) * 1.5 + 0.4)
    return _theta(_rotation_2x2(angles) @ shear @ scale, torch.randn(n, 2, generator=gen, dtype=torch.float64))


def _first_column(theta: torch.Tensor) -> tuple:
    """The typical mistake on sheared thetas: the angle of the first column alone, and its hint."""
    t = theta.double()
    return (
        torch.rad2deg(torch.atan2(t[..., 1, 0], t[..., 0, 0])).to(theta.dtype),
        "atan2(a10, a00) is the angle of the first column only; with a shear or unequal scales the two columns "
        "turn by different angles, and the closest rotation uses all four entries: atan2(a10 - a01, a00 + a11)",
    )


def check_rotation_from_theta_sheared(fn) -> None:
    """Visible check of ``rotation_from_theta`` on sheared and stretched thetas: the closest rotation."""
    theta = torch.tensor(
        [
            [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]],  # a pure shear: closest rotation -14.04 degrees
            [[2.0, 0.0, 0.1], [0.0, 0.5, 0.2]],  # a stretch: no rotation
            [[0.8, -0.9, 0.0], [0.6, 0.7, -0.3]],
        ],
        dtype=torch.float64,
    )
    _compare_rotation(
        fn,
        theta,
        _closest_rotation_deg(theta),
        "3 thetas: shear [[1, 0.5], [0, 1]], stretch diag(2, 0.5), and [[0.8, -0.9], [0.6, 0.7]], "
        "float64 (the angle of the closest rotation)",
        1e-6,
        mistakes=[_first_column(theta)],
    )
    passed("rotation_from_theta gives the angle of the rotation closest to a sheared or stretched 2x2 part")


def grade_rotation_from_theta_sheared(fn) -> None:
    """Hidden tests of ``rotation_from_theta`` on random sheared, stretched thetas, float32 and float64."""
    gen = torch.Generator().manual_seed(604)
    for n, dtype, atol in [(13, torch.float64, 1e-7), (11, torch.float32, 2e-3)]:
        theta = _sheared(gen, n)
        _compare_rotation(
            fn,
            theta.to(dtype),
            _closest_rotation_deg(theta),
            f"{n} random sheared thetas, {dtype}",
            atol,
            [_first_column(theta.to(dtype))],
        )
    print("rotation_from_theta (sheared): hidden tests passed")


# --------------------------------------------------------------------------- 3. residual_transform
def _apply(theta: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Oracle helper: map (N, P, 2) points by (N, 2, 3) thetas, written out per coordinate."""
    x, y = points[..., 0], points[..., 1]
    u = theta[:, 0, 0, None] * x + theta[:, 0, 1, None] * y + theta[:, 0, 2, None]
    v = theta[:, 1, 0, None] * x + theta[:, 1, 1, None] * y + theta[:, 1, 2, None]
    return torch.stack([u, v], dim=-1)


_UNIT_POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


def _compare_residual(fn, theta_learned: torch.Tensor, theta_true: torch.Tensor, on: str, atol: float) -> None:
    # Expected: an affine map is fixed by where it sends (0, 0), (1, 0) and (0, 1). Send those points
    # through theta_learned and then theta_true, and read the matrix off the images.
    points = _UNIT_POINTS.to(theta_true.dtype).expand(len(theta_true), 3, 2)
    image = _apply(theta_true, _apply(theta_learned, points))
    origin, ex, ey = image[:, 0], image[:, 1], image[:, 2]
    expected = torch.stack([ex - origin, ey - origin, origin], dim=-1)  # columns: A e_x, A e_y, t
    got = call_learner(fn, theta_learned.clone(), theta_true.clone(), name="residual_transform", on=on)
    _check_dtype(got, theta_true.dtype, fn="residual_transform", on=on, inputs="the thetas")
    check_close(got, expected, fn="residual_transform", on=on, atol=atol)


def check_residual_transform(fn) -> None:
    """Visible check of ``residual_transform``: an exact undo gives the identity; then shifts, a rotation, a zoom
    (float32 and float64)."""
    angle = torch.tensor([30.0], dtype=torch.float64)
    rot = _theta(0.8 * _rotation_2x2(angle), torch.tensor([[0.2, -0.1]], dtype=torch.float64)).float()
    undo = _theta(_rotation_2x2(-angle) / 0.8, torch.zeros(1, 2, dtype=torch.float64)).float()
    undo[:, :, 2] = -(undo[:, :, :2] @ rot[:, :, 2:]).squeeze(-1)  # the exact inverse of rot
    _compare_residual(
        fn,
        undo,
        rot,
        "theta_true = 0.8 R(30 deg) + shift (0.2, -0.1) and theta_learned = its inverse "
        "(the residual should be the identity)",
        1e-5,
    )
    theta_true = torch.tensor([[[1.5, 0.0, 0.3], [0.0, 1.5, -0.2]], [[0.0, -1.0, 0.0], [1.0, 0.0, 0.5]]])
    theta_learned = torch.tensor([[[0.6, 0.0, 0.1], [0.0, 0.6, 0.0]], [[1.0, 0.2, -0.4], [0.0, 1.0, 0.0]]])
    what = "a batch of 2: (zoom 1.5 + shift) after (zoom 0.6 + shift), and (R(90) + shift) after (shear + shift)"
    _compare_residual(fn, theta_learned, theta_true, f"{what}; the order matters", 1e-5)
    _compare_residual(fn, theta_learned.double(), theta_true.double(), f"{what}, float64", 1e-10)
    passed(
        "residual_transform maps p to theta_true(theta_learned(p)): the STN's output coordinates to the clean digit's"
    )


def grade_residual_transform(fn) -> None:
    """Hidden tests of ``residual_transform``: random affine thetas, float32 and float64, exact inverses."""
    gen = torch.Generator().manual_seed(605)
    for n, dtype, atol in [(10, torch.float64, 1e-10), (25, torch.float32, 1e-4)]:
        a = _sheared(gen, n)
        b = _sheared(gen, n)
        _compare_residual(fn, a.to(dtype), b.to(dtype), f"{n} random affine theta pairs, {dtype}", atol)
    true = _sheared(gen, 6)
    inv = torch.linalg.inv(true[:, :, :2])
    learned = _theta(inv, -(inv @ true[:, :, 2:]).squeeze(-1))
    _compare_residual(fn, learned, true, "6 random thetas and their exact inverses, float64", 1e-10)
    print("residual_transform: hidden tests passed")


# --------------------------------------------------------------------------- 4. angle_difference_deg
def _difference_oracle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """atan2 of the sine and cosine of a - b: the same angle, in (-180, 180]; then either end of the seam (the
    rounding of sine and cosine decides which, within 1e-9 degrees) becomes exactly -180."""
    rad = (a.double() - b.double()) * (math.pi / 180.0)
    wrapped = torch.rad2deg(torch.atan2(torch.sin(rad), torch.cos(rad)))
    return torch.where(wrapped.abs() >= 180.0 - 1e-9, torch.full_like(wrapped, -180.0), wrapped)


_SEAM_HINT = (
    "[-180, 180) holds -180 and not +180: a difference of exactly 180 degrees (mod 360) must come out as -180. "
    "torch.atan2(sin, cos) returns (-180, 180], and so does every wrap that rounds the other way; "
    "torch.remainder(a - b + 180, 360) - 180 gives [-180, 180)"
)


def _compare_difference(fn, a: torch.Tensor, b: torch.Tensor, on: str, atol: float) -> None:
    expected = _difference_oracle(a, b)
    got = call_learner(fn, a.clone(), b.clone(), name="angle_difference_deg", on=on)
    dtype = torch.promote_types(a.dtype, b.dtype)
    _check_dtype(got, dtype, fn="angle_difference_deg", on=on, inputs="a and b")
    expected = expected.to(dtype)
    # The typical seam mistake: +180 where -180 is expected, at some or all of the seam's entries (the range
    # (-180, 180] instead of [-180, 180); atan2 of sine and cosine rounds to either end).
    mistakes = []
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and bool((expected == -180.0).any()):
        got_d = got.detach().to(expected.dtype)
        near_plus_180 = (expected == -180.0) & ((got_d - 180.0).abs() <= max(atol, 1e-3))
        mistakes = [(torch.where(near_plus_180, got_d, expected), _SEAM_HINT)]
    check_close(got, expected, fn="angle_difference_deg", on=on, atol=atol, mistakes=mistakes)


def _seam_case(fn, dtype: torch.dtype, atol: float) -> None:
    """Differences of exactly +-180 degrees (mod 360): every one must be -180."""
    a = torch.tensor([180.0, -180.0, 540.0, 0.0, 90.0, 10.0], dtype=dtype)
    b = torch.tensor([0.0, 0.0, 0.0, 180.0, -90.0, -170.0], dtype=dtype)
    on = (
        f"the seam, {_dtype_name(dtype)}: a = (180, -180, 540, 0, 90, 10), b = (0, 0, 0, 180, -90, -170), "
        "every a - b is 180 (mod 360), so every answer is -180 (the interval [-180, 180) holds -180, not +180)"
    )
    _compare_difference(fn, a, b, on, atol)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def check_angle_difference_deg(fn) -> None:
    """Visible check of ``angle_difference_deg``: small differences, across +-180, beyond a full turn, broadcast, and
    the seam itself (a - b = 180 mod 360 gives -180), float32 and float64."""
    a = torch.tensor([10.0, 170.0, -170.0, 90.0, 400.0, -30.0])
    b = torch.tensor([-20.0, -170.0, 170.0, -80.0, 0.0, 330.0])
    _compare_difference(fn, a[:1], b[:1], "a = 10, b = -20 (expected 30)", 1e-4)
    _compare_difference(
        fn,
        a,
        b,
        "a = (10, 170, -170, 90, 400, -30), b = (-20, -170, 170, -80, 0, 330): 170 - (-170) is -20 degrees, not 340",
        1e-4,
    )
    _compare_difference(
        fn,
        a.reshape(2, 3).double(),
        b[:3].double(),
        "a of shape (2, 3) and b = (-20, -170, 170) of shape (3,), float64: a and b broadcast, as in a - b",
        1e-9,
    )
    _seam_case(fn, torch.float32, 1e-4)
    _seam_case(fn, torch.float64, 1e-9)
    passed("angle_difference_deg wraps a - b into [-180, 180) (180 becomes -180), for any broadcastable shapes")


def grade_angle_difference_deg(fn) -> None:
    """Hidden tests of ``angle_difference_deg``: random angles of any size, broadcasting, float64, the seam."""
    gen = torch.Generator().manual_seed(606)
    a = torch.rand(50, generator=gen, dtype=torch.float64) * 2000.0 - 1000.0
    b = torch.rand(50, generator=gen, dtype=torch.float64) * 2000.0 - 1000.0
    # Random differences stay away from the seam, where rounding decides the end (the exact seam is tested below).
    keep = _difference_oracle(a, b).abs() < 179.9
    _compare_difference(fn, a[keep], b[keep], f"{int(keep.sum())} random angles in [-1000, 1000), float64", 1e-9)
    a32 = torch.rand(4, 3, generator=gen) * 720.0 - 360.0
    b32 = torch.rand(3, generator=gen) * 720.0 - 360.0
    _compare_difference(fn, a32, b32, "a of shape (4, 3) and b of shape (3,) (broadcast), float32", 1e-3)
    turns = torch.arange(-3, 4, dtype=torch.float64)
    seam_a = 180.0 + 360.0 * turns[:, None] + torch.tensor([0.0, 45.0, -90.0], dtype=torch.float64)
    seam_b = torch.tensor([0.0, 45.0, -90.0], dtype=torch.float64)
    _compare_difference(
        fn, seam_a, seam_b, "a - b = 180 + 360 k for k = -3..3 (the seam), shape (7, 3) and (3,), float64", 1e-9
    )
    _compare_difference(fn, seam_a.float(), seam_b.float(), "the same seam, float32", 1e-3)
    print("angle_difference_deg: hidden tests passed")
