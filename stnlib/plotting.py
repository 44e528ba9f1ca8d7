"""Figure helpers shared by the notebooks. Every helper draws on a given matplotlib ``ax``,
so panels compose; none calls ``plt.show()``.

Images are shown with ``cmap="gray"``, ``interpolation="nearest"`` (so pixels stay visible)
and a fixed value range, with x = column to the right and y = row *down* (matplotlib's
image convention, the same as the course's pixel coordinates).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["show_image", "draw_points", "draw_grid", "image_row"]


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


def show_image(ax, image: torch.Tensor, title: str | None = None, *, vmin: float = 0.0, vmax: float = 1.0):
    """Show a (H, W) or (1, H, W) image on ``ax`` with pixel centres at integer coordinates.

    Args:
        ax: a matplotlib Axes.
        image: (H, W) or (1, H, W) tensor.
        title: optional title (put theta and align_corners in it).
        vmin, vmax: the value range mapped to black and white.
    """
    if image.dim() == 3:
        image = image[0]
    ax.imshow(_np(image), cmap="gray", interpolation="nearest", vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def draw_points(ax, points_xy: torch.Tensor, *, closed: bool = True, **style):
    """Draw (..., P, 2) points as a polygon (``closed``) or polyline, x to the right, y as given.

    Extra keyword arguments go to ``ax.plot`` (colour, marker, label, ...).
    """
    pts = _np(points_xy.reshape(-1, 2))
    if closed and len(pts) > 2:
        pts = np.vstack([pts, pts[:1]])
    style.setdefault("marker", "o")
    ax.plot(pts[:, 0], pts[:, 1], **style)
    return ax


def draw_grid(ax, grid_xy_pix: torch.Tensor, *, step: int = 1, color: str = "tab:orange", **style):
    """Draw a sampling grid given in *pixel* coordinates (H_out, W_out, 2) as a mesh of lines.

    Args:
        ax: Axes, usually the one showing the input image.
        grid_xy_pix: (H_out, W_out, 2), where each output pixel reads from, in input pixels.
        step: draw every ``step``-th row and column.
        color: line colour.
    """
    g = _np(grid_xy_pix)
    style.setdefault("linewidth", 0.8)
    for row in g[::step]:
        ax.plot(row[:, 0], row[:, 1], color=color, **style)
    for col in g[:, ::step].transpose(1, 0, 2):
        ax.plot(col[:, 0], col[:, 1], color=color, **style)
    return ax


def image_row(images, titles=None, *, size: float = 2.4):
    """A figure with one row of images; returns ``(fig, axes)``.

    Args:
        images: sequence of (H, W) tensors.
        titles: optional sequence of titles.
        size: inches per panel.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4), squeeze=False)
    for i, (ax, img) in enumerate(zip(axes[0], images)):
        show_image(ax, img, titles[i] if titles else None)
    fig.tight_layout()
    return fig, axes[0]
