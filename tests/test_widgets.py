"""Headless tests of the theta explorer (stnlib.widgets, notebook 04).

The widget's controls are driven from Python, as the browser would drive them, and every
number it shows is compared with torch's own ``F.affine_grid`` / ``F.grid_sample`` (the oracle):
theta, the sampling grid drawn on the input, and the output. No browser is needed here; the
browser test is tests/test_browser.py.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from stnlib import images, widgets  # noqa: E402
from stnlib.widgets import (  # noqa: E402
    ThetaExplorer,
    grid_lines,
    padded_input,
    render,
    render_theta,
    theta_from_controls,
)

ATOL = 1e-5


# --------------------------------------------------------------------------- oracles
def closed_form_theta(rotation_deg=0.0, scale_x=1.0, scale_y=1.0, shear=0.0, tx=0.0, ty=0.0) -> torch.Tensor:
    """T @ R @ Sh @ S written out with cos/sin (float64), as a (2, 3) theta."""
    a = math.radians(rotation_deg)
    c, s = math.cos(a), math.sin(a)
    # R @ Sh @ S = [[c, -s], [s, c]] @ [[1, k], [0, 1]] @ [[sx, 0], [0, sy]]
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    shearing = torch.tensor([[1.0, shear], [0.0, 1.0]], dtype=torch.float64)
    scaling = torch.diag(torch.tensor([scale_x, scale_y], dtype=torch.float64))
    linear = rotation @ shearing @ scaling
    return torch.cat([linear, torch.tensor([[tx], [ty]], dtype=torch.float64)], dim=1)


def torch_view(image: torch.Tensor, theta: torch.Tensor, *, align_corners: bool, padding_mode: str):
    """(grid in input pixels, output) from torch's affine_grid / grid_sample."""
    height, width = image.shape
    theta = theta.to(torch.float64).reshape(1, 2, 3)
    grid = F.affine_grid(theta, (1, 1, height, width), align_corners=align_corners)
    out = F.grid_sample(
        image.to(torch.float64)[None, None],
        grid,
        mode="bilinear",
        padding_mode=padding_mode,
        align_corners=align_corners,
    )[0, 0]
    if align_corners:
        x = (grid[0, ..., 0] + 1) / 2 * (width - 1)
        y = (grid[0, ..., 1] + 1) / 2 * (height - 1)
    else:
        x = ((grid[0, ..., 0] + 1) * width - 1) / 2
        y = ((grid[0, ..., 1] + 1) * height - 1) / 2
    return torch.stack([x, y], dim=-1), out


def assert_close(got, expected, atol=ATOL):
    got = torch.as_tensor(np.asarray(got) if not isinstance(got, torch.Tensor) else got).to(torch.float64)
    torch.testing.assert_close(got, expected.to(torch.float64), atol=atol, rtol=0)


def wide_image() -> torch.Tensor:
    """A 10 x 14 image with no symmetry: every flip, swap or shift changes it."""
    g = torch.Generator().manual_seed(4)
    img = torch.rand(10, 14, generator=g)
    img[1:4, 2:9] = 1.0
    return img


@pytest.fixture
def explorer():
    ex = ThetaExplorer(
        {"letter F": images.letter_f((28, 28)), "wide": wide_image(), "checkerboard": images.checkerboard((28, 28))}
    )
    yield ex
    ex.close()


def assert_explorer_matches_torch(ex: ThetaExplorer, expected_theta: torch.Tensor) -> None:
    """theta, the grid (computed and drawn) and the output are what torch says for expected_theta."""
    c = ex.controls
    assert_close(ex.theta, expected_theta)
    grid_pix, out = torch_view(
        ex.image, expected_theta, align_corners=c["align_corners"].value, padding_mode=c["padding_mode"].value
    )
    assert_close(ex.grid_pix, grid_pix, atol=1e-4)
    assert_close(ex.output, out, atol=1e-4)
    drawn = ex.canvas.segments
    if c["show_grid"].value:
        expected_lines = grid_lines(grid_pix, step=widgets._default_step(ex.image.shape))
        assert len(drawn) == len(expected_lines)
        for got, want in zip(drawn, expected_lines):
            assert_close(got, torch.as_tensor(want), atol=1e-4)
        # the lines include the first and last output rows and columns
        assert_close(drawn[0], grid_pix[0], atol=1e-4)
        assert_close(drawn[-1], grid_pix[:, -1], atol=1e-4)
    else:
        assert drawn == []
    assert_close(ex.canvas.top_row, grid_pix[0], atol=1e-4)


# --------------------------------------------------------------------------- pure functions
class TestThetaFromControls:
    def test_identity(self):
        assert torch.equal(theta_from_controls(), torch.tensor([[1.0, 0, 0], [0, 1, 0]]))

    @pytest.mark.parametrize(
        "params",
        [
            dict(rotation_deg=30.0),
            dict(scale_x=2.0, scale_y=0.5),
            dict(shear=0.4),
            dict(tx=0.25, ty=-0.75),
            dict(rotation_deg=-120.0, scale_x=1.5, scale_y=-0.8, shear=-0.3, tx=0.1, ty=0.6),
        ],
    )
    def test_matches_closed_form(self, params):
        got = theta_from_controls(**params)
        assert got.shape == (2, 3) and got.dtype == torch.float32
        assert_close(got, closed_form_theta(**params))

    def test_order_is_scale_first(self):
        # Scaling x by 2 then rotating by 90 degrees: x goes to (0, 2), so column 0 of theta is (0, 2).
        got = theta_from_controls(rotation_deg=90.0, scale_x=2.0)
        assert_close(got[:, 0], torch.tensor([0.0, 2.0], dtype=torch.float64))


class TestRender:
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    def test_matches_torch(self, align_corners, padding_mode):
        image = wide_image()
        theta = theta_from_controls(rotation_deg=23.0, scale_x=1.4, scale_y=0.7, shear=0.2, tx=0.3, ty=-0.2)
        view = render(image, theta, align_corners=align_corners, padding_mode=padding_mode)
        grid_pix, out = torch_view(image, theta, align_corners=align_corners, padding_mode=padding_mode)
        assert view.output.shape == image.shape and view.grid_pix.shape == (10, 14, 2)
        assert_close(view.grid_pix, grid_pix, atol=1e-4)
        assert_close(view.output, out, atol=1e-4)
        assert_close(view.theta, theta.double())

    def test_identity_returns_the_image(self):
        image = wide_image()
        view = render(image, theta_from_controls(), align_corners=False, padding_mode="zeros")
        assert_close(view.output, image.double())
        cols, rows = torch.meshgrid(torch.arange(14.0), torch.arange(10.0), indexing="xy")
        assert_close(view.grid_pix, torch.stack([cols, rows], -1).double(), atol=1e-4)

    def test_uses_the_hand_built_sampler(self, monkeypatch):
        def refuse(*args, **kwargs):
            raise AssertionError("the explorer must use stnlib.sampling, not torch's grid_sample")

        monkeypatch.setattr(F, "grid_sample", refuse)
        monkeypatch.setattr(F, "affine_grid", refuse)
        render(wide_image(), theta_from_controls(rotation_deg=10.0), align_corners=False, padding_mode="zeros")

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="theta must have shape"):
            render(wide_image(), torch.zeros(3, 3), align_corners=False, padding_mode="zeros")
        with pytest.raises(ValueError, match="padding_mode must be one of"):
            render(wide_image(), torch.zeros(2, 3), align_corners=False, padding_mode="wrap")
        with pytest.raises(ValueError, match="image must have shape"):
            render(torch.zeros(1, 5, 5), torch.zeros(2, 3), align_corners=False, padding_mode="zeros")

    def test_does_not_change_torch_threads(self):
        before = torch.get_num_threads()
        render(wide_image(), theta_from_controls(), align_corners=True, padding_mode="zeros")
        assert torch.get_num_threads() == before


class TestPaddedInput:
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    def test_matches_torch(self, align_corners, padding_mode):
        image, m = wide_image(), 3
        got = padded_input(image, margin=m, align_corners=align_corners, padding_mode=padding_mode)
        assert got.shape == (10 + 2 * m, 14 + 2 * m)
        assert_close(got[m:-m, m:-m], image.double())
        # torch, reading at the pixel centres -m .. W-1+m with nearest sampling
        xs, ys = torch.arange(-m, 14 + m, dtype=torch.float64), torch.arange(-m, 10 + m, dtype=torch.float64)
        if align_corners:
            xn, yn = 2 * xs / 13 - 1, 2 * ys / 9 - 1
        else:
            xn, yn = (2 * xs + 1) / 14 - 1, (2 * ys + 1) / 10 - 1
        grid = torch.stack(torch.meshgrid(xn, yn, indexing="xy"), -1)[None]
        want = F.grid_sample(
            image.double()[None, None], grid, mode="nearest", padding_mode=padding_mode, align_corners=align_corners
        )[0, 0]
        assert_close(got, want)

    def test_padding_values(self):
        image, m = wide_image(), 2
        zeros = padded_input(image, margin=m, align_corners=False, padding_mode="zeros")
        border = padded_input(image, margin=m, align_corners=False, padding_mode="border")
        assert zeros[:m].abs().sum() == 0
        assert_close(border[0, m:-m], image[0].double())


# --------------------------------------------------------------------------- the widget, driven from Python
class TestExplorer:
    def test_starts_at_identity(self, explorer):
        assert explorer.controls["image"].value == "letter F"
        assert_explorer_matches_torch(explorer, torch.eye(2, 3, dtype=torch.float64))
        assert_close(explorer.output, explorer.image.double())

    @pytest.mark.parametrize(
        "name, value",
        [
            ("rotation_deg", 35.0),
            ("scale_x", 1.5),
            ("scale_y", -0.7),
            ("shear", 0.45),
            ("tx", 0.4),
            ("ty", -0.65),
        ],
    )
    def test_each_slider(self, explorer, name, value):
        explorer.controls[name].value = value
        assert_explorer_matches_torch(explorer, closed_form_theta(**{name: value}))

    def test_sliders_combine(self, explorer):
        params = dict(rotation_deg=-50.0, scale_x=0.8, scale_y=1.25, shear=-0.2, tx=0.15, ty=0.3)
        for name, value in params.items():
            explorer.controls[name].value = value
        assert_explorer_matches_torch(explorer, closed_form_theta(**params))

    def test_each_slider_changes_picture(self, explorer):
        seen = {explorer.png}
        for name, value in [("rotation_deg", 10.0), ("scale_x", 1.2), ("tx", 0.2)]:
            before = explorer.output.clone()
            explorer.controls[name].value = value
            assert not torch.equal(before, explorer.output)
            assert explorer.png not in seen
            seen.add(explorer.png)

    def test_raw_mode_sets_entries(self, explorer):
        explorer.controls["mode"].value = "raw"
        values = [0.5, -0.25, 0.1, 0.3, -1.2, -0.4]
        for slider, v in zip(explorer.controls["raw"], values):
            slider.value = v
        expected = torch.tensor(values, dtype=torch.float64).reshape(2, 3)
        assert_explorer_matches_torch(explorer, expected)

    def test_mode_switch_keeps_theta(self, explorer):
        params = dict(rotation_deg=40.0, scale_x=1.2, scale_y=0.9, shear=0.1, tx=-0.3, ty=0.2)
        explorer.set_params(**params)
        before = explorer.theta
        explorer.controls["mode"].value = "raw"
        assert_close(explorer.theta, before.double(), atol=0.026)  # raw sliders step 0.05
        raw = explorer.theta
        explorer.controls["mode"].value = "params"
        assert_close(explorer.theta, raw.double(), atol=0.05)
        assert explorer._raw_box.layout.display == "none"

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_align_corners_toggle(self, explorer, align_corners):
        # A zoom about the centre reads the same pixels under both conventions; a shift does not:
        # tx = 0.3 moves by 0.3 * W / 2 pixels with False and 0.3 * (W - 1) / 2 with True.
        explorer.set_params(scale_x=0.5, scale_y=0.5, tx=0.3)
        explorer.controls["align_corners"].value = not align_corners
        other = explorer.output.clone()
        explorer.controls["align_corners"].value = align_corners
        assert_explorer_matches_torch(explorer, closed_form_theta(scale_x=0.5, scale_y=0.5, tx=0.3))
        assert not torch.allclose(other, explorer.output)

    @pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
    def test_padding_dropdown(self, explorer, padding_mode):
        explorer.controls["image"].value = "wide"
        explorer.controls["padding_mode"].value = padding_mode
        explorer.set_params(scale_x=1.8, scale_y=1.6, tx=0.3)
        assert_explorer_matches_torch(explorer, closed_form_theta(scale_x=1.8, scale_y=1.6, tx=0.3))

    def test_image_dropdown(self, explorer):
        explorer.set_params(rotation_deg=15.0)
        explorer.controls["image"].value = "wide"
        assert explorer.image.shape == (10, 14)
        assert_close(explorer.image, wide_image().double())
        assert_explorer_matches_torch(explorer, closed_form_theta(rotation_deg=15.0))
        assert Image.open(io.BytesIO(explorer.png)).size != (0, 0)

    def test_grid_toggle(self, explorer):
        explorer.set_params(rotation_deg=20.0)
        with_grid = explorer.png
        explorer.controls["show_grid"].value = False
        assert explorer.png != with_grid
        assert_explorer_matches_torch(explorer, closed_form_theta(rotation_deg=20.0))

    def test_reset(self, explorer):
        explorer.set_params(rotation_deg=70.0, tx=0.5)
        explorer.controls["reset"].click()
        assert_explorer_matches_torch(explorer, torch.eye(2, 3, dtype=torch.float64))

    def test_reset_after_set_theta_returns_to_the_parameter_sliders(self, explorer):
        explorer.set_theta(torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]))
        explorer.controls["reset"].click()
        assert explorer.controls["mode"].value == "params"
        assert_explorer_matches_torch(explorer, torch.eye(2, 3, dtype=torch.float64))
        explorer.controls["tx"].value = 0.25  # the parameter sliders act again
        assert_explorer_matches_torch(explorer, closed_form_theta(tx=0.25))

    def test_set_theta(self, explorer):
        theta = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
        explorer.set_theta(theta)
        assert explorer.controls["mode"].value == "raw"
        assert_explorer_matches_torch(explorer, theta.double())

    def test_one_render_per_batch(self, explorer):
        before = explorer.n_renders
        explorer.set_params(rotation_deg=10.0, scale_x=1.1, tx=0.2)
        assert explorer.n_renders == before + 1
        explorer.reset()
        assert explorer.n_renders == before + 2

    def test_set_params_rejects_unknown(self, explorer):
        with pytest.raises(ValueError, match="params must be among"):
            explorer.set_params(angle=3.0)

    def test_png_is_a_picture(self, explorer):
        picture = Image.open(io.BytesIO(explorer.png))
        assert picture.format == "PNG" and picture.width > 300 and picture.height > 200

    def test_widget_repr_and_no_display(self, explorer, capsys):
        bundle = explorer._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["text/plain"].startswith("ThetaExplorer(image='letter F'")  # shown without a frontend
        assert capsys.readouterr().out == ""

    def test_static_figure(self, explorer):
        explorer.set_params(rotation_deg=30.0, scale_x=1.3)
        fig = explorer.static_figure()
        try:
            ax_in = fig.axes[0]
            (lines,) = ax_in.collections
            expected = explorer.canvas.segments
            assert len(lines.get_segments()) == len(expected)
            for got, want in zip(lines.get_segments(), expected):
                np.testing.assert_allclose(got, want, atol=1e-5)
            np.testing.assert_allclose(fig.axes[1].images[0].get_array(), explorer.output.numpy(), atol=1e-6)
        finally:
            plt.close(fig)

    def test_mnist_digit_choice(self):
        ex = ThetaExplorer()
        assert {"letter F", "checkerboard", "MNIST digit 7"} <= set(ex.controls["image"].options)
        ex.controls["image"].value = "MNIST digit 7"
        assert_close(ex.image, images.mnist_digit(7).double())
        ex.controls["rotation_deg"].value = -45.0
        assert_explorer_matches_torch(ex, closed_form_theta(rotation_deg=-45.0))
        ex.close()


def test_render_theta_draws_on_given_axes():
    image = wide_image()
    theta = theta_from_controls(rotation_deg=12.0, tx=0.2)
    fig, (ax_in, ax_out) = plt.subplots(1, 2)
    try:
        view = render_theta(image, theta, ax_in=ax_in, ax_out=ax_out, align_corners=True, padding_mode="border")
        grid_pix, out = torch_view(image, theta, align_corners=True, padding_mode="border")
        assert_close(view.output, out, atol=1e-4)
        (lines,) = ax_in.collections
        assert_close(torch.as_tensor(lines.get_segments()[0]), grid_pix[0], atol=1e-4)
        assert "align_corners=True" in ax_out.get_title() and "border" in ax_in.get_title()
    finally:
        plt.close(fig)


def test_import_creates_no_figure_and_prints_nothing(capsys):
    import importlib

    before = plt.get_fignums()
    importlib.reload(widgets)
    ThetaExplorer({"F": images.letter_f()})
    assert plt.get_fignums() == before
    assert capsys.readouterr().out == ""
