"""The checks of notebook 04 (theta puzzles): they pass on the solutions and fail on typical mistakes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from nbutils import SOLUTIONS, answer_namespace

from stnlib import geometry
from stnlib.checks import CheckFailed, nb04

NB = SOLUTIONS / "04_theta_explorer" / "04_theta_explorer.ipynb"


@pytest.fixture(scope="module")
def ns():
    return answer_namespace(NB)


def const(values):
    """A puzzle answer that returns a fixed theta."""
    return lambda *args: torch.tensor(values, dtype=torch.float32)


# --------------------------------------------------------------------------- target views
def test_target_views_by_hand():
    img = nb04.index_image(4, 4)
    # Provenance: written out by hand from the definitions in the module docstring.
    assert nb04.mirror_view(img)[0].tolist() == [4.0, 3.0, 2.0, 1.0]
    assert nb04.rotate_90_view(img)[0].tolist() == [13.0, 9.0, 5.0, 1.0]  # left column, bottom to top
    assert nb04.rotate_90_view(img)[:, -1].tolist() == [1.0, 2.0, 3.0, 4.0]  # top row -> right column
    assert nb04.zoom_centre_view(img)[0].tolist() == [6.0, 6.0, 7.0, 7.0]
    assert nb04.crop_quadrant_view(img, "top-right")[0].tolist() == [3.0, 3.0, 4.0, 4.0]
    assert nb04.crop_quadrant_view(img, "bottom-left")[-1].tolist() == [13.0, 13.0, 14.0, 14.0]
    assert nb04.rotate_90_view(nb04.index_image(2, 3)).shape == (3, 2)


def test_rotate_target_is_clockwise_on_screen():
    # torch's own warp of an image by rotating the grid -90 degrees (theta maps output -> input)
    # equals the target: so the target is the image turned +90 degrees, clockwise with y down.
    img = nb04.index_image(6, 6)
    theta = geometry.compose_theta(rotation_deg=-90.0, dtype=torch.float64)[None]
    grid = F.affine_grid(theta, (1, 1, 6, 6), align_corners=False)
    warped = F.grid_sample(img[None, None], grid, mode="nearest", align_corners=False)[0, 0]
    assert torch.equal(warped, nb04.rotate_90_view(img))


# --------------------------------------------------------------------------- the solutions pass
@pytest.mark.parametrize("name", ["theta_zoom_centre", "theta_mirror", "theta_rotate_90", "theta_crop_quadrant"])
def test_solution_passes(ns, name, capsys):
    getattr(nb04, f"check_{name}")(ns[name])
    getattr(nb04, f"grade_{name}")(ns[name])
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "hidden tests passed" in out


# --------------------------------------------------------------------------- typical mistakes fail
ZOOM_MISTAKES = {
    "zoomed out (the image's map, not the grid's)": [[2.0, 0, 0], [0, 2.0, 0]],
    "zoom about the top-left corner": [[0.5, 0, -0.5], [0, 0.5, -0.5]],
    "identity": [[1.0, 0, 0], [0, 1.0, 0]],
}


@pytest.mark.parametrize("theta", ZOOM_MISTAKES.values(), ids=ZOOM_MISTAKES.keys())
def test_zoom_mistakes(theta):
    with pytest.raises(
        CheckFailed,
        match=r"theta_zoom_centre\(\) on a 8x12 index image.*output pixel \(row 0, col 0\)"
        r" shows .* but should show input pixel \(row 2, col 3\)",
    ):
        nb04.check_theta_zoom_centre(const(theta))


MIRROR_MISTAKES = {
    "upside down (y flipped)": [[1.0, 0, 0], [0, -1.0, 0]],
    "rotated 180 degrees": [[-1.0, 0, 0], [0, -1.0, 0]],
    "flip about the left edge": [[-1.0, 0, -1.0], [0, 1.0, 0]],
}


@pytest.mark.parametrize("theta", MIRROR_MISTAKES.values(), ids=MIRROR_MISTAKES.keys())
def test_mirror_mistakes(theta):
    with pytest.raises(CheckFailed, match="theta_mirror.*should show input pixel"):
        nb04.check_theta_mirror(const(theta))


ROTATE_MISTAKES = {
    "grid turned +90 (image turns anticlockwise)": [[0.0, -1.0, 0], [1.0, 0.0, 0]],
    "transposed (a mirror about the diagonal)": [[0.0, 1.0, 0], [1.0, 0.0, 0]],
    "rotation by 90 about the wrong point": [[0.0, 1.0, 1.0], [-1.0, 0.0, 0]],
}


@pytest.mark.parametrize("theta", ROTATE_MISTAKES.values(), ids=ROTATE_MISTAKES.keys())
def test_rotate_mistakes(theta):
    with pytest.raises(CheckFailed, match=r"theta_rotate_90.*output pixel \(row 0, col 0\) shows"):
        nb04.check_theta_rotate_90(const(theta))


def crop_with(sign_y=1.0, shift=0.5, raise_on_bad=True):
    def theta_crop_quadrant(quadrant):
        if raise_on_bad and quadrant not in nb04.QUADRANTS:
            raise ValueError(quadrant)
        tx = -shift if quadrant.endswith("left") else shift
        ty = (-shift if quadrant.startswith("top") else shift) * sign_y
        return torch.tensor([[0.5, 0.0, tx], [0.0, 0.5, ty]])

    return theta_crop_quadrant


def test_crop_mistake_y_up():
    # "top" taken as y > 0, as in a maths plot with y up: reads the bottom quadrant.
    expected = r"theta_crop_quadrant\('top-right'\).*should show input pixel \(row 0, col 6\)"
    with pytest.raises(CheckFailed, match=expected):
        nb04.check_theta_crop_quadrant(crop_with(sign_y=-1.0))


def test_crop_mistake_shift_in_pixels_fraction():
    # shifting by a quarter of the image (0.25) instead of half of the [-1, 1] range (0.5)
    with pytest.raises(CheckFailed, match="theta_crop_quadrant"):
        nb04.check_theta_crop_quadrant(crop_with(shift=0.25))


def test_crop_mistake_no_value_error():
    with pytest.raises(CheckFailed, match="expected ValueError, but nothing was raised"):
        nb04.check_theta_crop_quadrant(crop_with(raise_on_bad=False))
    with pytest.raises(CheckFailed, match="expected ValueError"):
        nb04.grade_theta_crop_quadrant(crop_with(raise_on_bad=False))


def test_hidden_tests_catch_what_the_visible_check_misses():
    # Right on the visible quadrants (top-right, bottom-left) only: swaps left/right for the others.
    def only_visible(quadrant):
        table = {
            "top-right": (0.5, -0.5),
            "bottom-left": (-0.5, 0.5),
            "top-left": (0.5, -0.5),
            "bottom-right": (-0.5, 0.5),
        }
        if quadrant not in table:
            raise ValueError(quadrant)
        tx, ty = table[quadrant]
        return torch.tensor([[0.5, 0.0, tx], [0.0, 0.5, ty]])

    nb04.check_theta_crop_quadrant(only_visible)
    with pytest.raises(CheckFailed, match=r"theta_crop_quadrant\('top-left'\)"):
        nb04.grade_theta_crop_quadrant(only_visible)


# --------------------------------------------------------------------------- shape, type and delegation
@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda: [[0.5, 0, 0], [0, 0.5, 0]], "expected a torch.Tensor of shape \\(2, 3\\), got list"),
        (
            lambda: torch.tensor([[[0.5, 0, 0], [0, 0.5, 0]]]),
            r"expected a theta of shape \(2, 3\), got shape \(1, 2, 3\)",
        ),
        (lambda: torch.eye(3), "got shape \\(3, 3\\)"),
        (lambda: torch.tensor([[1, 0, 0], [0, 1, 0]]), "floating-point"),
        (lambda: torch.full((2, 3), float("nan")), "inf or nan"),
    ],
)
def test_bad_return_values(bad, match):
    with pytest.raises(CheckFailed, match=match):
        nb04.check_theta_zoom_centre(bad)


def test_delegating_to_stnlib_fails():
    def theta_mirror():
        return geometry.compose_theta(scale_x=-1.0)

    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb04.check_theta_mirror(theta_mirror)
    with pytest.raises((RuntimeError, CheckFailed), match="not available"):
        nb04.grade_theta_mirror(theta_mirror)


def test_delegating_to_torch_fails():
    def theta_rotate_90():
        # "measure" the answer by warping with torch: blocked while the check runs
        F.affine_grid(torch.zeros(1, 2, 3), (1, 1, 2, 2), align_corners=False)
        return torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])

    with pytest.raises((RuntimeError, CheckFailed), match="affine_grid is not available"):
        nb04.check_theta_rotate_90(theta_rotate_90)


def test_float64_answers_pass(ns):
    nb04.grade_theta_rotate_90(lambda: ns["theta_rotate_90"]().double())


# --------------------------------------------------------------------------- what the messages say
def test_error_inside_the_answer_is_wrapped_with_the_argument():
    def theta_crop_quadrant(quadrant):
        if quadrant not in nb04.QUADRANTS:
            raise ValueError(quadrant)
        if quadrant.endswith("left"):
            tx = -0.5
        return torch.tensor([[0.5, 0.0, tx], [0.0, 0.5, 0.5]])  # tx only set on the left

    with pytest.raises(CheckFailed, match=r"theta_crop_quadrant on quadrant='top-right': raised UnboundLocalError"):
        nb04.check_theta_crop_quadrant(theta_crop_quadrant)


def test_bilinear_blend_is_not_called_an_input_pixel():
    """A mirror shifted by a fraction of a pixel: nearest sampling is right, bilinear reads between pixels."""
    with pytest.raises(CheckFailed) as err:
        nb04.check_theta_mirror(const([[-1.0, 0, 0.1], [0, 1.0, 0]]))
    text = str(err.value)
    assert "mode='bilinear'" in text and "shows 4.2, a blend of neighbouring input pixels" in text
    assert "shows input pixel" not in text


def test_message_previews_the_row_and_prints_no_minus_zero():
    with pytest.raises(CheckFailed) as err:
        nb04.check_theta_rotate_90(lambda: -torch.eye(2, 3))  # a half turn, written with -0 entries
    text = str(err.value)
    assert "expected[0, :] [31, 25, 19, 13, 7, 1]" in text and "got[0, :]      [36, 35, 34, 33, 32, 31]" in text
    assert "Your theta: [[-1, 0, 0], [0, -1, 0]]" in text and "-0" not in text


def test_reminder_only_when_theta_is_the_inverse():
    """The output -> input reminder comes when the learner's theta is the inverse of the right one, not otherwise."""
    for theta, check in [
        ([[2.0, 0, 0], [0, 2.0, 0]], nb04.check_theta_zoom_centre),
        ([[0.0, -1.0, 0], [1.0, 0.0, 0]], nb04.check_theta_rotate_90),
    ]:
        with pytest.raises(CheckFailed, match=r"(?s)Hint: the inverse of your theta gives this view.*Remember"):
            check(const(theta))
    for theta, check in [
        ([[-1.0, 0, -1.0], [0, 1.0, 0]], nb04.check_theta_mirror),  # flipped about the left edge
        ([[0.0, 1.0, 1.0], [-1.0, 0.0, 0]], nb04.check_theta_rotate_90),  # about the wrong point
    ]:
        with pytest.raises(CheckFailed) as err:
            check(const(theta))
        assert "Remember" not in str(err.value) and "inverse" not in str(err.value)
