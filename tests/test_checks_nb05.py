"""The checks of notebook 05 (stnlib.checks.nb05): they pass on the solutions, fail on typical mistakes
with a message that helps, and refuse solutions that delegate to torch's or stnlib's reference ops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from nbutils import SOLUTIONS, answer_namespace
from torch import nn

from stnlib import geometry, models
from stnlib.checks import CheckFailed, nb05

NOTEBOOK = SOLUTIONS / "05_train_an_stn" / "05_train_an_stn.ipynb"


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(NOTEBOOK)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The checks run many tiny convolutions: one thread is faster than several competing ones."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# (check, grade, function name)
CHECKS = [
    (nb05.check_loc_features, nb05.grade_loc_features, "loc_features"),
    (nb05.check_init_identity, nb05.grade_init_identity, "init_identity_"),
    (nb05.check_stn_forward, nb05.grade_stn_forward, "stn_forward"),
    (nb05.check_stn_forward_gradients, nb05.grade_stn_forward_gradients, "stn_forward"),
    (nb05.check_theta_to_params, nb05.grade_theta_to_params, "theta_to_params"),
    (nb05.check_similarity_theta, nb05.grade_similarity_theta, "similarity_theta"),
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


def test_every_check_has_a_grade():
    names = set(nb05.__all__)
    for name in names:
        if name.startswith("check_"):
            assert "grade_" + name[len("check_") :] in names


def test_answer_cells_need_only_torch_f_math(ns):
    assert {"loc_features", "init_identity_", "stn_forward", "theta_to_params", "similarity_theta"} <= set(ns)


# --------------------------------------------------------------------------- exercise 1: loc_features
def test_tutorial_stack_gives_the_tutorials_90_and_stnlibs_sizes():
    # Provenance: the tutorial's nn.Linear(10 * 3 * 3, 32); TutorialNet computes the same by formula.
    for size in [(28, 28), (42, 42), (60, 60), (29, 36)]:
        features = nb05.tutorial_loc_stack()(torch.zeros(1, 1, *size)).shape[1]
        assert features == models.TutorialNet(size).loc_features
    assert nb05.tutorial_loc_stack()(torch.zeros(1, 1, 28, 28)).shape[1] == 90


def _walk(in_size, kernels, pool, out_channels, *, shrink=True, rounding=math.floor, check=True):
    height, width = in_size
    for kernel in kernels:
        if shrink:
            height, width = height - kernel + 1, width - kernel + 1
        height, width = rounding(height / pool), rounding(width / pool)
        if check and (height < 1 or width < 1):
            raise ValueError("too small")
    return out_channels * height * width


def loc_true_division(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return _walk(in_size, kernels, pool, out_channels, rounding=lambda v: v)


def loc_no_shrink(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return _walk(in_size, kernels, pool, out_channels, shrink=False)


def loc_ceil(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return _walk(in_size, kernels, pool, out_channels, rounding=math.ceil)


def loc_no_value_error(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return max(0, _walk(in_size, kernels, pool, out_channels, check=False))


def loc_hard_coded(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return 90


def loc_float(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
    return float(_walk(in_size, kernels, pool, out_channels))


@pytest.mark.parametrize(
    "fn, match",
    [
        (loc_true_division, "rounds each side down"),
        (loc_no_shrink, "shrinks each side by kernel - 1"),
        (loc_ceil, "rounds down \\(floor\\), not up"),
        (loc_no_value_error, "expected ValueError, but it returned 0"),
        (loc_hard_coded, "in_size=\\(42, 42\\).*expected 490 features, got 90"),
        (loc_float, "return a Python int"),
    ],
)
def test_loc_features_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb05.check_loc_features(fn)


def test_loc_features_delegating_to_tutorialnet_fails():
    def delegate(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
        return models.TutorialNet(in_size).loc_features  # only the tutorial's own stack

    with pytest.raises(CheckFailed, match="kernels=\\(5, 3\\)"):
        nb05.check_loc_features(delegate)


def test_loc_features_hidden_tests_catch_a_special_case():
    def only_two_layers(in_size, *, kernels=(7, 5), pool=2, out_channels=10):
        if len(kernels) != 2 and len(kernels) != 3:
            return 1
        return _walk(in_size, kernels, pool, out_channels)

    nb05.check_loc_features(only_two_layers)
    with pytest.raises(CheckFailed):
        nb05.grade_loc_features(only_two_layers)


# --------------------------------------------------------------------------- exercise 2: init_identity_
def init_transposed_bias(layer):
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]))  # column by column
    return layer


def init_bias_only(layer):
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    return layer


def init_new_parameters(layer):
    layer.weight = nn.Parameter(torch.zeros_like(layer.weight))
    layer.bias = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=layer.bias.dtype))
    return layer


def init_frozen(layer):
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    layer.requires_grad_(False)
    return layer


def init_float32_bias(layer):
    with torch.no_grad():
        layer.weight.zero_()
    layer.bias.data = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # float32 even in a float64 layer
    return layer


def init_returns_copy(layer):
    new = nn.Linear(layer.in_features, 6)
    with torch.no_grad():
        new.weight.zero_()
        new.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    return new


@pytest.mark.parametrize(
    "fn, match",
    [
        (init_transposed_bias, "row by row"),
        (init_bias_only, "the weight"),
        (init_new_parameters, "replaced by new Parameters"),
        (init_frozen, "trainable"),
        (init_returns_copy, "return the same layer"),
    ],
)
def test_init_identity_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb05.check_init_identity(fn)


def test_init_identity_visible_check_catches_a_float32_bias():
    """layer.bias.data = torch.tensor([...]) turns a float64 layer's bias into float32: the visible check says so."""
    with pytest.raises(CheckFailed, match=r"(?s)keep the layer's dtype float64.*Hint: .*bias.copy_"):
        nb05.check_init_identity(init_float32_bias)
    with pytest.raises(CheckFailed, match="keep the layer's dtype float64"):
        nb05.grade_init_identity(init_float32_bias)


def test_init_identity_via_stnlib_model_fails():
    def delegate(layer):
        st = models.SpatialTransformer((28, 28))  # identity-initialised, but Linear(32, 6)
        with torch.no_grad():
            layer.weight.copy_(st.fc_loc[-1].weight)
            layer.bias.copy_(st.fc_loc[-1].bias)
        return layer

    with pytest.raises((RuntimeError, CheckFailed)):
        nb05.check_init_identity(delegate)  # the visible check already uses Linear(90, 6)


def test_init_identity_without_no_grad_is_wrapped_with_a_hint():
    """zero_() on a Parameter outside torch.no_grad(): torch's message does not say what to do, the hint does."""

    def init_without_no_grad(layer):
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
        return layer

    with pytest.raises(
        CheckFailed,
        match=r"(?s)init_identity_ on a random nn.Linear\(32, 6\), float32: raised RuntimeError: a leaf Variable.*"
        r"Hint: .*with torch.no_grad\(\)",
    ):
        nb05.check_init_identity(init_without_no_grad)


# --------------------------------------------------------------------------- exercise 3: stn_forward
def forward_transposed(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    features = localization(x if loc_input is None else loc_input)
    theta = fc_loc(features.flatten(1)).view(-1, 3, 2).transpose(1, 2)
    return grid_sample_fn(x, affine_grid_fn(theta, x.shape)), theta


def forward_ignores_loc_input(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    theta = fc_loc(localization(x).flatten(1)).view(-1, 2, 3)
    return grid_sample_fn(x, affine_grid_fn(theta, x.shape)), theta


def forward_warps_loc_input(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    source = x if loc_input is None else loc_input
    theta = fc_loc(localization(source).flatten(1)).view(-1, 2, 3)
    return grid_sample_fn(source, affine_grid_fn(theta, source.shape)), theta


def forward_swapped_size(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
    n, c, h, w = x.shape
    return grid_sample_fn(x, affine_grid_fn(theta, (n, c, w, h))), theta


def forward_swapped_arguments(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
    grid = affine_grid_fn(theta, x.shape)
    return grid_sample_fn(grid, x), theta


def forward_detached(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3).detach()
    return grid_sample_fn(x, affine_grid_fn(theta, x.shape)), theta


def forward_no_grad(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    with torch.no_grad():
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        return grid_sample_fn(x, affine_grid_fn(theta, x.shape)), theta


def forward_theta_only(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
    return grid_sample_fn(x, affine_grid_fn(theta, x.shape))


@pytest.mark.parametrize(
    "fn, match",
    [
        (forward_transposed, "row by row: .view\\(-1, 2, 3\\), not a transpose"),
        (forward_ignores_loc_input, "theta must come from loc_input"),
        (forward_warps_loc_input, "the sampler must warp x itself, but it got loc_input"),
        (forward_swapped_size, "must get size=x.shape=\\(2, 1, 9, 12\\)"),
        (forward_swapped_arguments, r"stn_forward on x \(2, 1, 9, 12\).*must get a grid \(N, H, W, 2\) second"),
        (forward_theta_only, "return a pair \\(warped, theta\\)"),
    ],
)
def test_stn_forward_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb05.check_stn_forward(fn)


def forward_inverse_theta(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
    """Warps with the inverse of theta (input -> output thinking) but returns the right theta."""
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
    last = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype).expand(len(theta), 1, 3)
    inverse = torch.linalg.inv(torch.cat([theta, last], 1))[:, :2]
    return grid_sample_fn(x, affine_grid_fn(inverse, x.shape)), theta


def test_stn_forward_reminder_only_where_it_applies():
    """The output -> input reminder follows a wrong warp with a right theta, not a wrong theta or loc_input."""
    with pytest.raises(CheckFailed, match="(?s)the warped image.*Remember: theta says where each OUTPUT"):
        nb05.check_stn_forward(forward_inverse_theta)
    for fn in (forward_transposed, forward_ignores_loc_input):
        with pytest.raises(CheckFailed) as err:
            nb05.check_stn_forward(fn)
        assert "Remember" not in str(err.value) and "Hint:" in str(err.value)


@pytest.mark.parametrize("fn", [forward_detached, forward_no_grad])
def test_stn_forward_cut_gradients_fail_the_gradient_check(fn):
    nb05.check_stn_forward(fn)  # the values are right
    with pytest.raises(CheckFailed, match="no gradient|carries no gradient"):
        nb05.check_stn_forward_gradients(fn)
    with pytest.raises(CheckFailed):
        nb05.grade_stn_forward_gradients(fn)


def test_stn_forward_float32_fails_the_first_check():
    """x cast to float32 (a float32 warp of a float64 batch): the values check has a float64 case."""

    def forward_float32(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        return grid_sample_fn(x.float(), affine_grid_fn(theta.float(), x.shape)), theta

    with pytest.raises(CheckFailed, match=r"stn_forward on x \(2, 1, 9, 12\) float64"):
        nb05.check_stn_forward(forward_float32)


def test_stn_forward_delegating_to_torch_fails():
    def delegate(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False), theta

    with pytest.raises((RuntimeError, CheckFailed), match="not available while this exercise is graded"):
        nb05.check_stn_forward(delegate)


def test_stn_forward_error_is_wrapped_with_the_input():
    """Features not flattened before fc_loc: a CheckFailed naming the input, with a hint (torch only says mat1/mat2)."""

    def unflattened(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        theta = fc_loc(localization(x if loc_input is None else loc_input)).view(-1, 2, 3)
        return grid_sample_fn(x, affine_grid_fn(theta, x.shape)), theta

    match = r"(?s)stn_forward on x \(2, 1, 9, 12\).*raised RuntimeError: mat1 and mat2.*Hint: .*flatten\(1\)"
    with pytest.raises(CheckFailed, match=match):
        nb05.check_stn_forward(unflattened)
    with pytest.raises(CheckFailed, match=match):
        nb05.check_stn_forward_gradients(unflattened)


def test_stn_forward_gradients_swapped_pair():
    """(theta, warped) instead of (warped, theta): the gradient check says so before any arithmetic on it."""

    def swapped(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        return theta, grid_sample_fn(x, affine_grid_fn(theta, x.shape))

    with pytest.raises(
        CheckFailed, match=r"expected the warped image of x's shape \(2, 1, 9, 12\) first .*got shape \(2, 2, 3\)"
    ):
        nb05.check_stn_forward_gradients(swapped)


def test_stn_forward_backward_error_is_wrapped():
    def in_place_after_use(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        warped = grid_sample_fn(x, affine_grid_fn(theta, x.shape))
        one = torch.exp(warped * 0.0)  # saved for the backward pass of exp ...
        result = warped * one
        one.mul_(1.0)  # ... and changed in place afterwards
        return result, theta

    with pytest.raises(
        CheckFailed,
        match=r"stn_forward \(backward pass through your result\) on x \(2, 1, 9, 12\).*raised RuntimeError",
    ):
        nb05.check_stn_forward_gradients(in_place_after_use)


def test_stn_forward_delegating_to_stnlib_model_fails():
    def delegate(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        st = models.SpatialTransformer(tuple(x.shape[-2:]), localization=localization, sampler="stnlib")
        st.fc_loc = fc_loc
        return st(x, loc_input=loc_input), st.theta(x if loc_input is None else loc_input)

    with pytest.raises((RuntimeError, CheckFailed)):
        nb05.check_stn_forward(delegate)


def test_stn_forward_hidden_tests_use_the_given_align_corners():
    def always_false(x, localization, fc_loc, *, affine_grid_fn, grid_sample_fn, loc_input=None):
        # Ignores the grid generator it is given and builds an align_corners=False grid by hand.
        theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
        n, c, h, w = x.shape
        xs = (2 * torch.arange(w, dtype=x.dtype) + 1) / w - 1
        ys = (2 * torch.arange(h, dtype=x.dtype) + 1) / h - 1
        base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, dtype=x.dtype)], -1)
        grid = (base.reshape(1, -1, 3) @ theta.transpose(1, 2)).reshape(n, h, w, 2)
        affine_grid_fn(theta, x.shape)
        return grid_sample_fn(x, grid), theta

    nb05.check_stn_forward(always_false)  # the visible check uses align_corners=False
    with pytest.raises(CheckFailed, match="align_corners=True"):
        nb05.grade_stn_forward(always_false)


# --------------------------------------------------------------------------- exercise 4: theta_to_params
def params_atan(theta):
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.rad2deg(torch.atan((a10 - a01) / (a00 + a11)))
    return torch.stack([angle, torch.sqrt(a00 * a11 - a01 * a10), theta[:, 0, 2], theta[:, 1, 2]], -1)


def params_radians(theta):
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.atan2(a10 - a01, a00 + a11)
    return torch.stack([angle, torch.sqrt(a00 * a11 - a01 * a10), theta[:, 0, 2], theta[:, 1, 2]], -1)


def params_sign(theta):
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.rad2deg(torch.atan2(a01 - a10, a00 + a11))
    return torch.stack([angle, torch.sqrt(a00 * a11 - a01 * a10), theta[:, 0, 2], theta[:, 1, 2]], -1)


def params_no_sqrt(theta):
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.rad2deg(torch.atan2(a10 - a01, a00 + a11))
    return torch.stack([angle, a00 * a11 - a01 * a10, theta[:, 0, 2], theta[:, 1, 2]], -1)


def params_wrong_column(theta):
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.rad2deg(torch.atan2(a10 - a01, a00 + a11))
    return torch.stack([angle, torch.sqrt(a00 * a11 - a01 * a10), theta[:, 0, 2], theta[:, 0, 1]], -1)


def params_first_column(theta):
    # stnlib's decompose_theta angle (the first column's): the same for rotation + scale, not with shear.
    a00, a01, a10, a11 = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    angle = torch.rad2deg(torch.atan2(a10, a00))
    return torch.stack([angle, torch.sqrt(a00 * a11 - a01 * a10), theta[:, 0, 2], theta[:, 1, 2]], -1)


@pytest.mark.parametrize(
    "fn, match",
    [
        (params_atan, "torch.atan2\\(y, x\\), not atan"),
        (params_radians, "in degrees"),
        (params_sign, "wrong sign"),
        (params_no_sqrt, "square root"),
        (params_wrong_column, "at index \\(\\d, 3\\)"),
    ],
)
def test_theta_to_params_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb05.check_theta_to_params(fn)


def test_theta_to_params_hidden_tests_catch_the_first_column_angle():
    nb05.check_theta_to_params(params_first_column)
    with pytest.raises(CheckFailed, match="sheared"):
        nb05.grade_theta_to_params(params_first_column)


def test_theta_to_params_delegating_to_stnlib_fails():
    def delegate(theta):
        p = geometry.decompose_theta(theta)
        return torch.stack([p.rotation_deg, (p.scale_x * p.scale_y).sqrt(), p.tx, p.ty], -1)

    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb05.check_theta_to_params(delegate)


def test_theta_to_params_message_names_the_column():
    """The result holds four quantities: the message names the column (angle, scale, tx or ty) that differs."""
    with pytest.raises(CheckFailed, match=r"at index \(\d, 3\) \(ty\), got"):
        nb05.check_theta_to_params(params_wrong_column)
    with pytest.raises(CheckFailed, match=r"at index \(\d, 1\) \(scale\), got.*\n.*\n.*\n  Hint: .*square root"):
        nb05.check_theta_to_params(params_no_sqrt)
    with pytest.raises(CheckFailed, match=r"\(angle_deg\)(.|\n)*wrong sign.*atan2\(a10 - a01, a00 \+ a11\)"):
        nb05.check_theta_to_params(params_sign)


def test_theta_to_params_float32_result_fails_visibly():
    """A loop over thetas with math and torch.tensor(...) gives float32: the visible check has a float64 case."""

    def loop(theta):
        rows = []
        for (a00, a01, tx), (a10, a11, ty) in theta.tolist():
            angle = math.degrees(math.atan2(a10 - a01, a00 + a11))
            rows.append([angle, math.sqrt(a00 * a11 - a01 * a10), tx, ty])
        return torch.tensor(rows)

    with pytest.raises(
        CheckFailed,
        match=r"(?s)\(float64\): expected dtype float64 \(that of theta\), got float32.*Hint: .*torch.tensor",
    ):
        nb05.check_theta_to_params(loop)


def test_theta_to_params_error_is_wrapped_with_the_input():
    def one_theta(theta):
        (a00, a01, _), (a10, a11, _) = theta.tolist()  # one theta (2, 3), not a batch (N, 2, 3)
        return torch.tensor([math.degrees(math.atan2(a10 - a01, a00 + a11)), 1.0, 0.0, 0.0])

    with pytest.raises(CheckFailed, match=r"theta_to_params on 5 thetas .*: raised ValueError"):
        nb05.check_theta_to_params(one_theta)


def test_polar_oracle_agrees_with_the_closed_form():
    # Provenance: the closest rotation to A maximises trace(R^T A) = cos(phi)(a00 + a11) + sin(phi)(a10 - a01).
    gen = torch.Generator().manual_seed(0)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.4 * torch.randn(20, 2, 3, generator=gen, dtype=torch.float64)
    theta = theta[torch.linalg.det(theta[:, :, :2]) > 0]
    a = theta[:, :, :2]
    closed = torch.rad2deg(torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1]))
    assert torch.allclose(nb05._polar_params(theta)[:, 0], closed, atol=1e-9)


# --------------------------------------------------------------------------- exercise 5: similarity_theta
def _similarity(angle, s, tx, ty, *, top=None, bottom=None):
    rows = [
        top or [s * torch.cos(angle), -s * torch.sin(angle), tx],
        bottom or [s * torch.sin(angle), s * torch.cos(angle), ty],
    ]
    return torch.stack([torch.stack(row, 1) for row in rows], 1)


def similarity_degrees(params):
    a, s, tx, ty = params.unbind(1)
    return _similarity(torch.deg2rad(a), s, tx, ty)


def similarity_transposed(params):
    a, s, tx, ty = params.unbind(1)
    return _similarity(-a, s, tx, ty)


def similarity_scaled_shift(params):
    a, s, tx, ty = params.unbind(1)
    return _similarity(a, s, s * tx, s * ty)


def similarity_column_major(params):
    a, s, tx, ty = params.unbind(1)
    return _similarity(a, s, tx, ty).transpose(1, 2).reshape(-1, 2, 3)


def similarity_no_graph(params):
    return torch.tensor(
        [
            [
                [float(p[1] * math.cos(p[0])), float(-p[1] * math.sin(p[0])), float(p[2])],
                [float(p[1] * math.sin(p[0])), float(p[1] * math.cos(p[0])), float(p[3])],
            ]
            for p in params.detach()
        ],
        dtype=params.dtype,
    )


def similarity_float32(params):
    a, s, tx, ty = params.float().unbind(1)
    return _similarity(a, s, tx, ty)


@pytest.mark.parametrize(
    "fn, match",
    [
        (similarity_degrees, "already in radians"),
        (similarity_transposed, "minus sign sits on the top row"),
        (similarity_scaled_shift, "shift is not scaled"),
        (similarity_column_major, "row by row"),
        (similarity_no_graph, "requires_grad is False"),
    ],
)
def test_similarity_theta_mistakes(fn, match):
    with pytest.raises(CheckFailed, match=match):
        nb05.check_similarity_theta(fn)


def test_similarity_theta_visible_check_catches_a_fixed_dtype():
    """params.float() (or torch.zeros without dtype=) gives float32 for float64 params: the visible check says so."""
    with pytest.raises(
        CheckFailed, match=r"(?s)float64: expected dtype float64 \(that of params\).*Hint: .*\.float\(\)"
    ):
        nb05.check_similarity_theta(similarity_float32)
    with pytest.raises(CheckFailed, match="expected dtype float64"):
        nb05.grade_similarity_theta(similarity_float32)

    def zeros_filled(params):
        a, s, tx, ty = params.unbind(1)
        theta = torch.zeros(len(params), 2, 3)  # float32 whatever params is
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = s * torch.cos(a), -s * torch.sin(a), tx
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = s * torch.sin(a), s * torch.cos(a), ty
        return theta

    with pytest.raises(CheckFailed, match=r"(?s)expected dtype float64.*torch.zeros\(...\) without dtype="):
        nb05.check_similarity_theta(zeros_filled)


def test_similarity_theta_delegating_to_stnlib_fails():
    def delegate(params):
        return models.params_to_theta(params, "similarity")

    with pytest.raises(CheckFailed, match="not available"):
        nb05.check_similarity_theta(delegate)


def test_similarity_oracle_agrees_with_stnlib():
    """The 3x3-product oracle and stnlib's closed form (used by the models) give the same theta."""
    gen = torch.Generator().manual_seed(1)
    params = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(nb05._similarity_oracle(params), models.similarity_theta(params))
