"""The theta explorer of notebook 04: move sliders, watch the sampling grid and the output follow.

Introduced in notebook 04 (theta explorer). The maths sits in pure functions that need no
frontend, and the widget is a thin shell around them:

- :func:`theta_from_controls`: slider values -> theta, ``theta = T @ R @ Sh @ S`` (as
  :func:`stnlib.geometry.compose_theta`).
- :func:`render`: image + theta -> a :class:`View` holding theta, the sampling grid in input
  pixels and the output, computed with the course's hand-built sampler (:mod:`stnlib.sampling`).
- :func:`render_theta`: draws a view on two matplotlib axes (static figures).
- :class:`ThetaExplorer`: the ipywidgets 8 widget. Nothing is displayed at import or when it is
  built; show it by making it the last expression of a cell (or with ``display``).

Convention:
    ``theta`` is ``src_norm_trans_dst_norm``: it maps each *output* pixel (normalised, x = column,
    y = row, y down) to the point of the *input* it reads. The grid drawn on the input shows those
    points: each line joins the reading points of one output row (or column), the red line is the
    output's top row and the red dot its top-left pixel. So a grid turned clockwise gives an output
    turned anticlockwise on screen. ``align_corners`` and ``padding_mode`` mean what they mean for
    ``torch.nn.functional.grid_sample`` (defaults False and ``"zeros"``, as torch).

Example:
    >>> view = render(torch.eye(3, 4), compose_theta(), align_corners=False, padding_mode="zeros")
    >>> torch.allclose(view.output, torch.eye(3, 4)), tuple(view.grid_pix.shape)
    (True, (3, 4, 2))
"""

from __future__ import annotations

import contextlib
import functools
import html
import io
from typing import NamedTuple

import numpy as np
import torch

from . import images as _images
from .geometry import compose_theta, decompose_theta, pixel_to_normalised, unnormalise
from .sampling import PADDING_MODES, affine_grid, grid_sample
from .validation import check_choice, check_floating, check_shape

__all__ = [
    "CONTROL_DEFAULTS",
    "View",
    "theta_from_controls",
    "render",
    "padded_input",
    "grid_lines",
    "render_theta",
    "ExplorerCanvas",
    "default_images",
    "ThetaExplorer",
]

#: The parameter sliders, their defaults (the identity) and ranges: name -> (default, min, max, step).
CONTROL_DEFAULTS = {
    "rotation_deg": (0.0, -180.0, 180.0, 1.0),
    "scale_x": (1.0, -2.0, 2.0, 0.05),
    "scale_y": (1.0, -2.0, 2.0, 0.05),
    "shear": (0.0, -1.0, 1.0, 0.05),
    "tx": (0.0, -1.5, 1.5, 0.05),
    "ty": (0.0, -1.5, 1.5, 0.05),
}
_RAW_RANGE = (-2.0, 2.0, 0.05)
_GRID_COLOUR = "#ff9f1c"  # orange: the sampling grid
_TOP_COLOUR = "#e63946"  # red: the output's top row and its top-left pixel


# --------------------------------------------------------------------------- pure maths
class View(NamedTuple):
    """What the explorer shows for one setting.

    Attributes:
        theta: (2, 3) float32, ``src_norm_trans_dst_norm``.
        grid_pix: (H_out, W_out, 2), for each output pixel the (x, y) input pixel it reads
            (before padding is applied, so it may lie outside the image).
        output: (H_out, W_out), the warped image.
    """

    theta: torch.Tensor
    grid_pix: torch.Tensor
    output: torch.Tensor


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread inside the block: for 28x28 images, waking a thread pool costs far
    more than the arithmetic (tens of ms on a busy machine instead of well under one)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def theta_from_controls(
    rotation_deg: float = 0.0,
    scale_x: float = 1.0,
    scale_y: float = 1.0,
    shear: float = 0.0,
    tx: float = 0.0,
    ty: float = 0.0,
) -> torch.Tensor:
    """Theta from the explorer's parameter sliders: ``T(tx, ty) @ R(rotation) @ Sh(shear) @ S(scale)``.

    Convention:
        Normalised units; the angle in degrees, turning grid points clockwise on screen (y down).
        The *image* then turns the other way: theta maps output points to input points.

    Args:
        rotation_deg, scale_x, scale_y, shear, tx, ty: Python floats.

    Returns:
        (2, 3) float32 theta; all defaults give the identity.

    Example:
        >>> theta_from_controls(scale_x=2.0, tx=0.5)
        tensor([[2.0000, 0.0000, 0.5000],
                [0.0000, 1.0000, 0.0000]])
    """
    values = [float(v) for v in (rotation_deg, scale_x, scale_y, shear, tx, ty)]
    return compose_theta(*values, dtype=torch.float32)


def render(
    image: torch.Tensor,
    theta: torch.Tensor,
    *,
    align_corners: bool,
    padding_mode: str,
    mode: str = "bilinear",
) -> View:
    """Warp ``image`` with ``theta`` using stnlib's hand-built grid generator and sampler.

    Args:
        image: (H, W) float tensor.
        theta: (2, 3) or (1, 2, 3) float tensor.
        align_corners: required keyword, as for ``grid_sample``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        mode: ``"bilinear"`` (default) or ``"nearest"``.

    Returns:
        :class:`View` with the output the same size as ``image``; equal (up to float rounding)
        to ``F.grid_sample(image[None, None], F.affine_grid(theta[None], ...), ...)``.
    """
    check_floating(image, "image")
    check_shape(image, "H,W", name="image")
    check_floating(theta, "theta")
    check_choice(padding_mode, PADDING_MODES, "padding_mode")
    theta = check_shape(theta.reshape(-1, 2, 3) if theta.numel() == 6 else theta, "1,2,3", name="theta")
    theta = theta.detach().to(torch.float32)
    img = image.detach().to(torch.float32)[None, None]
    height, width = img.shape[-2:]
    with _one_thread():
        grid = affine_grid(theta, (1, 1, height, width), align_corners=align_corners)
        out = grid_sample(img, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        grid_pix = torch.stack(
            [unnormalise(grid[0, ..., 0], width, align_corners), unnormalise(grid[0, ..., 1], height, align_corners)],
            dim=-1,
        )
    return View(theta[0].clone(), grid_pix, out[0, 0])


def padded_input(image: torch.Tensor, *, margin: int, align_corners: bool, padding_mode: str) -> torch.Tensor:
    """The input as the sampler sees it: ``image`` extended by ``margin`` pixels on each side.

    Each extra pixel holds what a read at its centre returns (0 for ``"zeros"``, the nearest edge
    pixel for ``"border"``, the mirrored image for ``"reflection"``); the explorer draws it dimmed
    around the image.

    Args:
        image: (H, W) float tensor.
        margin: pixels added on each side (>= 0).
        align_corners, padding_mode: as for ``grid_sample`` (they decide where reflection mirrors).

    Returns:
        (H + 2 margin, W + 2 margin) float32 tensor; the middle is ``image``.
    """
    check_floating(image, "image")
    check_shape(image, "H,W", name="image")
    height, width = image.shape
    rows = torch.arange(-margin, height + margin, dtype=torch.float64)
    cols = torch.arange(-margin, width + margin, dtype=torch.float64)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    xy_pix = torch.stack([xs, ys], dim=-1)  # the centre of every pixel of the padded picture
    grid = pixel_to_normalised(xy_pix, size=(height, width), align_corners=align_corners).to(torch.float32)[None]
    img = image.detach().to(torch.float32)[None, None]
    return grid_sample(img, grid, mode="nearest", padding_mode=padding_mode, align_corners=align_corners)[0, 0]


def grid_lines(grid_pix: torch.Tensor, *, step: int) -> list[np.ndarray]:
    """The polylines drawn for a sampling grid: every ``step``-th row and column, and the last ones.

    Args:
        grid_pix: (H_out, W_out, 2) input pixel coordinates (x, y).
        step: keep rows/columns 0, step, 2 step, ... and always the last one.

    Returns:
        A list of (W_out, 2) arrays (the rows, top first) followed by (H_out, 2) arrays (the columns).
    """
    g = grid_pix.detach().cpu().numpy()
    height, width = g.shape[:2]

    def picks(n):
        idx = list(range(0, n, max(1, int(step))))
        return idx if idx[-1] == n - 1 else idx + [n - 1]

    return [g[i] for i in picks(height)] + [g[:, j] for j in picks(width)]


def _default_step(size) -> int:
    return max(1, round(min(size) / 7))


def _num(value: float, digits: int = 2) -> float:
    """``value`` rounded for display, without a "-0.00"."""
    return round(float(value), digits) + 0.0


def _theta_text(theta: torch.Tensor) -> str:
    rows = ["[" + "  ".join(f"{_num(v):+.2f}" for v in row) + "]" for row in theta.tolist()]
    return "θ = [" + rows[0] + "\n     " + rows[1] + "]"


# --------------------------------------------------------------------------- drawing
def _backdrop_rgb(padded: torch.Tensor, *, margin: int) -> np.ndarray:
    """(H + 2m, W + 2m, 3) floats in [0, 1]: the image in grey, the padding around it dimmed and tinted blue."""
    v = padded.detach().clamp(0, 1).numpy().astype(np.float32)[..., None]
    rgb = np.repeat(v, 3, axis=-1)
    outside = np.ones(v.shape[:2], dtype=bool)
    outside[margin : v.shape[0] - margin, margin : v.shape[1] - margin] = False
    rgb[outside] = 0.45 * rgb[outside] + 0.55 * np.array([0.16, 0.22, 0.38], dtype=np.float32)
    return rgb


def _draw_panels(ax_in, ax_out, view: View, padded: torch.Tensor, *, margin: int, step: int, show_grid: bool) -> None:
    """Draw the input panel (padded input, image border, grid, top row) and the output panel with matplotlib."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    height, width = view.output.shape
    m = margin
    ext_in = (-m - 0.5, width - 1 + m + 0.5, height - 1 + m + 0.5, -m - 0.5)
    ax_in.imshow(_backdrop_rgb(padded, margin=m), extent=ext_in, interpolation="nearest")
    ax_in.add_patch(
        Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="white", linewidth=0.8, linestyle=(0, (3, 2)))
    )
    if show_grid:
        ax_in.add_collection(LineCollection(grid_lines(view.grid_pix, step=step), colors=_GRID_COLOUR, linewidths=0.9))
    top = view.grid_pix[0].detach().cpu().numpy()
    ax_in.plot(top[:, 0], top[:, 1], color=_TOP_COLOUR, linewidth=1.8)
    ax_in.plot(top[:1, 0], top[:1, 1], "o", color=_TOP_COLOUR, markersize=4.5)
    ax_in.set_xlim(ext_in[0], ext_in[1])
    ax_in.set_ylim(ext_in[2], ext_in[3])
    ax_out.imshow(view.output.detach().clamp(0, 1).numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # The output's top row and top-left pixel, in the colours used for their reading points.
    ax_out.plot([-0.5, width - 0.5], [-0.5, -0.5], color=_TOP_COLOUR, linewidth=3, clip_on=False)
    ax_out.plot([0], [0], "o", color=_TOP_COLOUR, markersize=4.5)
    ax_out.set_xlim(-0.5, width - 0.5)
    ax_out.set_ylim(height - 0.5, -0.5)
    for ax in (ax_in, ax_out):
        ax.set_xticks([])
        ax.set_yticks([])


def _margin(size) -> int:
    return max(2, round(0.4 * max(size)))


def render_theta(
    image: torch.Tensor,
    theta: torch.Tensor,
    *,
    ax_in,
    ax_out,
    align_corners: bool,
    padding_mode: str = "zeros",
    mode: str = "bilinear",
    grid_step: int | None = None,
    show_grid: bool = True,
    titles: bool = True,
) -> View:
    """Draw the input with its sampling grid on ``ax_in`` and the warped output on ``ax_out``.

    The figure the explorer shows, for static use (no widgets). The input panel shows, dimmed
    around the image, what the sampler reads outside it for this ``padding_mode``.

    Args:
        image: (H, W) float tensor in [0, 1].
        theta: (2, 3) or (1, 2, 3) float tensor, ``src_norm_trans_dst_norm``.
        ax_in, ax_out: matplotlib Axes.
        align_corners: required keyword.
        padding_mode: ``"zeros"`` (default), ``"border"`` or ``"reflection"``.
        mode: ``"bilinear"`` (default) or ``"nearest"`` sampling.
        grid_step: draw every ``grid_step``-th grid line (default: about 7 lines per side).
        show_grid: draw the sampling grid at all.
        titles: set titles stating theta, ``align_corners`` and the padding.

    Returns:
        The :class:`View` drawn.
    """
    view = render(image, theta, align_corners=align_corners, padding_mode=padding_mode, mode=mode)
    margin = _margin(image.shape)
    padded = padded_input(image, margin=margin, align_corners=align_corners, padding_mode=padding_mode)
    _draw_panels(
        ax_in, ax_out, view, padded, margin=margin, step=grid_step or _default_step(image.shape), show_grid=show_grid
    )
    if titles:
        ax_in.set_title(f"input + sampling grid\npadding_mode={padding_mode!r}", fontsize=9)
        ax_out.set_title(
            f"{_theta_text(view.theta)}\nalign_corners={align_corners}",
            fontsize=8,
            family="monospace",
            multialignment="left",
        )
    return view


class ExplorerCanvas:
    """Draws the explorer's picture (input + grid, output) as PNG bytes, fast, without matplotlib.

    Matplotlib needs 20-60 ms per redraw even with a reused figure and blitting (most of it in
    resampling the images), so the live widget draws with Pillow instead, in about 10 ms: pixels
    are enlarged by an integer factor (sharp squares, as ``interpolation="nearest"``), the grid is
    drawn at twice that size and halved (antialiasing), and the PNG is written with the fastest
    compression. What changes only with the image, padding or ``align_corners`` (the enlarged
    padded input, the titles) is drawn once and reused. :func:`render_theta` draws the same
    picture with matplotlib for static figures.

    Args:
        size: (H, W) of the images.
        panel_px: about how wide the input panel is, in screen pixels.
    """

    _PAD, _GAP, _TITLE_H = 6, 18, 20

    def __init__(self, size, *, panel_px: int = 300):
        from PIL import ImageFont

        self.size = (int(size[0]), int(size[1]))
        self.margin = _margin(self.size)
        self.zoom = max(1, round(panel_px / (self.size[1] + 2 * self.margin)))
        try:
            self._font = ImageFont.load_default(size=13)
        except (TypeError, OSError):  # Pillow without FreeType
            self._font = ImageFont.load_default()
        self._backdrop = None  # the padded input enlarged 2 * zoom times, with the image border (PIL image)
        self._base = None  # white canvas with the titles (PIL image)
        self._titles = ("input", "output")
        self.segments: list[np.ndarray] = []  #: the grid polylines drawn last, in input pixels (x, y)
        self.top_row = np.zeros((0, 2))  #: where the output's top row reads, in input pixels
        self._view: View | None = None

    def set_backdrop(self, padded: torch.Tensor) -> None:
        """Set the padded input (see :func:`padded_input`): the image in grey, the padding dimmed."""
        from PIL import Image, ImageDraw

        rgb = (_backdrop_rgb(padded, margin=self.margin) * 255 + 0.5).astype(np.uint8)
        z2, m = 2 * self.zoom, self.margin
        big = Image.fromarray(rgb).resize((rgb.shape[1] * z2, rgb.shape[0] * z2), Image.NEAREST)
        height, width = self.size
        ImageDraw.Draw(big).rectangle(
            [m * z2, m * z2, (m + width) * z2 - 1, (m + height) * z2 - 1], outline=(235, 235, 235), width=2
        )
        self._backdrop = big

    def set_titles(self, left: str, right: str) -> None:
        """The panel titles (the canvas behind the panels is redrawn only when they change)."""
        if (left, right) != self._titles or self._base is None:
            self._titles = (left, right)
            self._base = None

    def set_view(self, view: View, *, step: int | None = None, show_grid: bool = True) -> None:
        """Take the grid and the output to draw from ``view``."""
        self._view = view
        self.segments = grid_lines(view.grid_pix, step=step or _default_step(self.size)) if show_grid else []
        self.top_row = view.grid_pix[0].detach().cpu().numpy()

    def _layout(self):
        height, width = self.size
        z, m, pad = self.zoom, self.margin, self._PAD
        in_w, in_h = (width + 2 * m) * z, (height + 2 * m) * z
        x_out, y_out = pad + in_w + self._GAP, self._TITLE_H + m * z
        right_w = max(width * z, int(self._font.getlength(self._titles[1])) + 2)
        return in_w, in_h, x_out, y_out, (x_out + right_w + pad, self._TITLE_H + in_h + pad)

    def _draw_base(self):
        from PIL import Image, ImageDraw

        _in_w, _in_h, x_out, y_out, canvas_size = self._layout()
        z = self.zoom
        base = Image.new("RGB", canvas_size, "white")
        draw = ImageDraw.Draw(base)
        draw.text((self._PAD, 3), self._titles[0], fill="black", font=self._font)
        draw.text((x_out, y_out - 22), self._titles[1], fill="black", font=self._font)
        # The output's top row and top-left pixel, in the colours of their reading points.
        draw.rectangle([x_out, y_out - 4, x_out + self.size[1] * z - 1, y_out - 2], fill=_TOP_COLOUR)
        return base

    def png(self) -> bytes:
        """The picture for the current view as PNG bytes."""
        from PIL import Image, ImageDraw

        if self._view is None or self._backdrop is None:
            raise RuntimeError("ExplorerCanvas.png needs set_backdrop and set_view first")
        if self._base is None:
            self._base = self._draw_base()
        z, z2, m = self.zoom, 2 * self.zoom, self.margin
        panel = self._backdrop.copy()
        draw = ImageDraw.Draw(panel)

        def px(points):  # input pixel (x, y) -> panel pixels at double size
            return [tuple(p) for p in ((np.asarray(points, dtype=np.float64) + m + 0.5) * z2).tolist()]

        for line in self.segments:
            draw.line(px(line), fill=_GRID_COLOUR, width=2)
        draw.line(px(self.top_row), fill=_TOP_COLOUR, width=4)
        (x, y), r = px(self.top_row[:1])[0], 1.6 * z
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_TOP_COLOUR)

        out = (self._view.output.detach().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        height, width = out.shape
        out_img = Image.fromarray(out, mode="L").resize((width * z, height * z), Image.NEAREST)

        _in_w, _in_h, x_out, y_out, _size = self._layout()
        canvas = self._base.copy()
        canvas.paste(panel.reduce(2), (self._PAD, self._TITLE_H))
        canvas.paste(out_img, (x_out, y_out))
        draw = ImageDraw.Draw(canvas)
        cx, cy, r = x_out + z / 2, y_out + z / 2, 0.8 * z + 1
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_TOP_COLOUR)
        buf = io.BytesIO()
        canvas.save(buf, format="png", compress_level=1)
        return buf.getvalue()


# --------------------------------------------------------------------------- the widget
def default_images() -> dict:
    """The explorer's images by name: the letter F, a few MNIST digits and a checkerboard.

    Returns:
        dict name -> zero-argument function returning a (28, 28) float32 tensor in [0, 1].
    """
    out = {"letter F": functools.partial(_images.letter_f, (28, 28))}
    out.update({f"MNIST digit {d}": functools.partial(_images.mnist_digit, d) for d in (7, 2, 4, 5)})
    out["checkerboard"] = functools.partial(_images.checkerboard, (28, 28))
    return out


_RAW_NAMES = [f"θ[{i},{j}]" for i in range(2) for j in range(3)]


class ThetaExplorer:
    """Sliders for theta next to the sampling grid on the input, the output and the matrix.

    Built on demand and displayed only when it is the last expression of a cell (it has an
    ipywidgets ``_repr_mimebundle_``) or passed to ``display``. Without a frontend it still
    works: set its controls from code and read :attr:`theta`, :attr:`output`, :attr:`grid_pix`.

    Controls (in :attr:`controls`, all ipywidgets 8): ``mode`` (``"params"`` or ``"raw"``), the
    parameter sliders ``rotation_deg``, ``scale_x``, ``scale_y``, ``shear``, ``tx``, ``ty``, the raw
    sliders ``raw`` (six, row by row), ``align_corners``, ``padding_mode``, ``image``,
    ``show_grid`` and the ``reset`` button.

    Convention:
        As :func:`theta_from_controls` and :func:`render`: theta maps output points to input
        points; align_corners=False and padding "zeros" by default, as torch.

    Args:
        images: dict name -> (H, W) tensor or zero-argument function returning one
            (default :func:`default_images`). Images are loaded when first chosen.
        image: the name shown first (default: the first).
        align_corners, padding_mode: initial values.
        continuous_update: update while a slider is dragged (default True). One update takes
            10-15 ms of CPU (``benchmarks/widget_update.py``), and the widget frontend keeps at
            most one change in flight (newer values replace older ones while the kernel is
            busy), so drags do not pile up; pass False on a slow machine to update on release.

    Example:
        >>> ex = ThetaExplorer()
        >>> ex.controls["tx"].value = 0.5
        >>> ex.theta
        tensor([[1.0000, 0.0000, 0.5000],
                [0.0000, 1.0000, 0.0000]])
    """

    def __init__(
        self,
        images: dict | None = None,
        *,
        image: str | None = None,
        align_corners: bool = False,
        padding_mode: str = "zeros",
        continuous_update: bool = True,
    ):
        import ipywidgets as w

        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self._sources = dict(images or default_images())
        if not self._sources:
            raise ValueError("images must name at least one image; got an empty dict")
        first = image if image is not None else next(iter(self._sources))
        check_choice(first, list(self._sources), "image")
        self._cache: dict[str, torch.Tensor] = {}
        self._quiet = False
        self._canvas: ExplorerCanvas | None = None
        self._backdrop_key = None
        self.n_renders = 0

        slider_layout = w.Layout(width="400px")
        style = {"description_width": "90px"}
        c: dict = {}
        for name, (default, lo, hi, step) in CONTROL_DEFAULTS.items():
            label = {"rotation_deg": "rotation (°)", "scale_x": "scale x", "scale_y": "scale y"}.get(name, name)
            c[name] = w.FloatSlider(
                value=default,
                min=lo,
                max=hi,
                step=step,
                description=label,
                readout_format=".0f" if name == "rotation_deg" else ".2f",
                continuous_update=continuous_update,
                layout=slider_layout,
                style=style,
            )
        lo, hi, step = _RAW_RANGE
        c["raw"] = [
            w.FloatSlider(
                value=float(v),
                min=lo,
                max=hi,
                step=step,
                description=n,
                readout_format=".2f",
                continuous_update=continuous_update,
                layout=w.Layout(width="205px"),
                style={"description_width": "45px"},
            )
            for n, v in zip(_RAW_NAMES, (1, 0, 0, 0, 1, 0))
        ]
        c["mode"] = w.ToggleButtons(
            options=[("parameters", "params"), ("raw theta", "raw")], value="params", style={"button_width": "110px"}
        )
        c["align_corners"] = w.Checkbox(value=bool(align_corners), description="align_corners", indent=False)
        c["padding_mode"] = w.Dropdown(
            options=list(PADDING_MODES),
            value=padding_mode,
            description="padding",
            layout=w.Layout(width="220px"),
            style={"description_width": "60px"},
        )
        c["image"] = w.Dropdown(
            options=list(self._sources),
            value=first,
            description="image",
            layout=w.Layout(width="220px"),
            style={"description_width": "60px"},
        )
        c["show_grid"] = w.Checkbox(value=True, description="sampling grid", indent=False)
        c["reset"] = w.Button(description="reset to identity", icon="undo", layout=w.Layout(width="160px"))
        self.controls = c

        self.view_image = w.Image(format="png", layout=w.Layout(width="auto", max_width="100%"))
        self.view_image.add_class("stn-explorer-view")
        self.matrix = w.HTML(layout=w.Layout(min_width="250px"))
        self.matrix.add_class("stn-explorer-matrix")
        self._params_box = w.VBox([c[n] for n in CONTROL_DEFAULTS])
        self._raw_box = w.GridBox(c["raw"], layout=w.Layout(grid_template_columns="repeat(3, 210px)", display="none"))
        options = w.VBox([c["image"], c["padding_mode"], c["align_corners"], c["show_grid"], c["reset"]])
        self.widget = w.VBox(
            [
                w.HBox([self.view_image, self.matrix]),
                c["mode"],
                w.HBox([w.VBox([self._params_box, self._raw_box]), options]),
            ],
            layout=w.Layout(border="1px solid #ddd", padding="6px"),
        )
        self.widget.add_class("stn-theta-explorer")

        for name in [*CONTROL_DEFAULTS, "align_corners", "padding_mode", "image", "show_grid"]:
            c[name].observe(self._on_change, names="value")
        for slider in c["raw"]:
            slider.observe(self._on_change, names="value")
        c["mode"].observe(self._on_mode, names="value")
        c["reset"].on_click(lambda _button: self.reset())
        self.update()

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:  # what a page without widget support shows
            bundle["text/plain"] = repr(self)
        return bundle

    def close(self) -> None:
        """Close the widget and all its controls (they disappear from the page and free their comms)."""
        for child in [
            self.widget,
            self.view_image,
            self.matrix,
            self._params_box,
            self._raw_box,
            *(v for k, v in self.controls.items() if k != "raw"),
            *self.controls["raw"],
        ]:
            child.close()

    def __repr__(self) -> str:
        return f"ThetaExplorer(image={self.controls['image'].value!r}, theta={self.theta.tolist()})"

    # ------------------------------------------------------------------ state
    @property
    def image(self) -> torch.Tensor:
        """(H, W) float32: the current input image."""
        name = self.controls["image"].value
        if name not in self._cache:
            source = self._sources[name]
            img = source() if callable(source) else source
            check_floating(img, f"images[{name!r}]")
            check_shape(img, "H,W", name=f"images[{name!r}]")
            self._cache[name] = img.detach().to(torch.float32)
        return self._cache[name]

    @property
    def theta(self) -> torch.Tensor:
        """(2, 3) float32: the theta the controls set now (a copy)."""
        c = self.controls
        if c["mode"].value == "raw":
            return torch.tensor([s.value for s in c["raw"]], dtype=torch.float32).reshape(2, 3)
        return theta_from_controls(**{n: c[n].value for n in CONTROL_DEFAULTS})

    @property
    def view(self) -> View:
        """The :class:`View` shown now (theta, grid in input pixels, output)."""
        return self._view

    @property
    def output(self) -> torch.Tensor:
        """(H, W): the output shown now."""
        return self._view.output

    @property
    def grid_pix(self) -> torch.Tensor:
        """(H, W, 2): for each output pixel, the (x, y) input pixel it reads."""
        return self._view.grid_pix

    @property
    def png(self) -> bytes:
        """The PNG bytes of the picture shown now."""
        return self.view_image.value

    @property
    def canvas(self) -> ExplorerCanvas:
        """The Pillow renderer that draws the picture (the grid it draws is :attr:`grid_pix`)."""
        return self._canvas

    # ------------------------------------------------------------------ actions
    @contextlib.contextmanager
    def batch(self):
        """Change several controls with a single redraw at the end: ``with ex.batch(): ...``."""
        outer = self._quiet
        self._quiet = True
        try:
            yield self
        finally:
            self._quiet = outer
        if not outer:
            self.update()

    def set_params(self, **params: float) -> None:
        """Switch to the parameter sliders and set the named ones (the others keep their values).

        Values outside a slider's range are clipped to it (ipywidgets does that).
        """
        unknown = set(params) - set(CONTROL_DEFAULTS)
        if unknown:
            raise ValueError(f"params must be among {', '.join(CONTROL_DEFAULTS)}; got {', '.join(sorted(unknown))}")
        with self.batch():
            self.controls["mode"].value = "params"
            for name, value in params.items():
                self.controls[name].value = float(value)

    def set_theta(self, theta: torch.Tensor) -> None:
        """Switch to the raw sliders and set all six entries from ``theta`` (2, 3) (clipped to [-2, 2])."""
        check_floating(theta, "theta")
        values = check_shape(theta.detach().reshape(-1, 2, 3) if theta.numel() == 6 else theta, "1,2,3", name="theta")
        with self.batch():
            self.controls["mode"].value = "raw"
            for slider, v in zip(self.controls["raw"], values.flatten().tolist()):
                slider.value = v

    def reset(self) -> None:
        """Back to the identity and to the parameter sliders (where the explorer starts).

        After :meth:`set_theta` the explorer shows the raw sliders; a reset that stayed there would
        leave the parameter sliders hidden and seemingly dead.
        """
        with self.batch():
            self.controls["mode"].value = "params"
            for name, (default, *_rest) in CONTROL_DEFAULTS.items():
                self.controls[name].value = default
            for slider, v in zip(self.controls["raw"], (1, 0, 0, 0, 1, 0)):
                slider.value = float(v)

    def static_figure(self, *, size: float = 3.0):
        """A pyplot figure of the current state (input + grid, output, theta in the title).

        For places without a live frontend; end the cell with ``plt.show()``.
        """
        import matplotlib.pyplot as plt

        h, w = self.image.shape
        margin = _margin((h, w))
        fig, (ax_in, ax_out) = plt.subplots(
            1, 2, figsize=(2.3 * size, size + 0.5), gridspec_kw={"width_ratios": [(w + 2 * margin) / w, 1.0]}
        )
        render_theta(
            self.image,
            self.theta,
            ax_in=ax_in,
            ax_out=ax_out,
            align_corners=self.controls["align_corners"].value,
            padding_mode=self.controls["padding_mode"].value,
            show_grid=self.controls["show_grid"].value,
        )
        fig.tight_layout()
        return fig

    # ------------------------------------------------------------------ updates
    def _on_mode(self, change) -> None:
        """Carry theta over when the mode changes, and show that mode's sliders."""
        c = self.controls
        raw = change["new"] == "raw"
        self._params_box.layout.display = "none" if raw else None
        self._raw_box.layout.display = None if raw else "none"
        if self._quiet:
            return
        with self.batch():
            if raw:
                previous = theta_from_controls(**{n: c[n].value for n in CONTROL_DEFAULTS})
                for slider, v in zip(c["raw"], previous.flatten().tolist()):
                    slider.value = v
            else:
                previous = torch.tensor([s.value for s in c["raw"]], dtype=torch.float32).reshape(2, 3)
                parts = decompose_theta(previous.double())
                for name, value in zip(CONTROL_DEFAULTS, parts):
                    value = float(torch.nan_to_num(value, nan=CONTROL_DEFAULTS[name][0]))
                    c[name].value = value

    def _on_change(self, change) -> None:
        if not self._quiet:
            self.update()

    def update(self) -> None:
        """Recompute the view from the controls and redraw (what every control change calls)."""
        c = self.controls
        img = self.image
        align_corners, padding_mode = bool(c["align_corners"].value), c["padding_mode"].value
        view = render(img, self.theta, align_corners=align_corners, padding_mode=padding_mode)
        size = tuple(img.shape)
        if self._canvas is None or self._canvas.size != size:
            self._canvas = ExplorerCanvas(size)
            self._backdrop_key = None
        key = (c["image"].value, align_corners, padding_mode)
        if key != self._backdrop_key:
            with _one_thread():
                padded = padded_input(
                    img, margin=self._canvas.margin, align_corners=align_corners, padding_mode=padding_mode
                )
            self._canvas.set_backdrop(padded)
            self._backdrop_key = key
        self._canvas.set_view(view, show_grid=c["show_grid"].value)
        self._canvas.set_titles(
            f"input + sampling grid (padding {padding_mode!r})", f"output (align_corners={align_corners})"
        )
        self._view = view
        self.view_image.value = self._canvas.png()
        self.matrix.value = _matrix_html(view.theta)
        self.n_renders += 1


def _matrix_html(theta: torch.Tensor) -> str:
    """The matrix panel: theta, its determinant and its parts (rotation, scale, shear, translation)."""
    det = float(theta[0, 0] * theta[1, 1] - theta[0, 1] * theta[1, 0])
    parts = decompose_theta(theta.double())
    rot, sx, sy, k, tx, ty = (_num(torch.nan_to_num(p), 3) for p in parts)
    note = " (mirrored)" if det < 0 else " (singular)" if abs(det) < 1e-9 else ""
    text = (
        f"{_theta_text(theta)}\n\n"
        f"det = {_num(det, 3):+.3f}{note}\n"
        f"rotation {rot:+.1f}°  shear {k:+.2f}\n"
        f"scale ({sx:.2f}, {sy:+.2f})\n"
        f"translation ({tx:+.2f}, {ty:+.2f})"
    )
    return (
        "<pre style='font-size:13px;line-height:1.35;margin:4px 10px'>" + html.escape(text) + "</pre>"
        "<div style='font-size:12px;line-height:1.4;color:#555;margin:0 10px;max-width:260px'>"
        "Grid on the input: where each "
        "output pixel reads. <span style='color:" + _TOP_COLOUR + "'>Red</span>: the output's top row, "
        "dot = its top-left pixel.</div>"
    )
