"""Argument checks shared by every stnlib function.

Every public stnlib function checks its inputs with these helpers first, so that bad input
fails with a message that names the argument, what was expected and what arrived, e.g.::

    ValueError: theta must have shape (B, 2, 3); got (4, 3, 3)

instead of an opaque error from deep inside torch.
"""

from __future__ import annotations

import torch

__all__ = ["check_tensor", "check_shape", "check_floating", "check_choice", "check_size", "check_positive_int"]


def check_tensor(value, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``value`` is a ``torch.Tensor``; return it unchanged."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    return value


def check_floating(value: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` unless ``value`` has a floating-point dtype (float32, float64, ...)."""
    check_tensor(value, name)
    if not value.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype (float32 or float64); got {value.dtype}")
    return value


def check_shape(value: torch.Tensor, pattern: str, name: str) -> torch.Tensor:
    """Check ``value.shape`` against a pattern such as ``"B,2,3"`` or ``"...,3,3"``.

    Each comma-separated entry is either an integer (that size exactly), a name (any size;
    the same name used twice must match), or ``...`` as the first entry (any number of
    leading dimensions, possibly none).

    Example:
        >>> check_shape(torch.zeros(4, 2, 3), "B,2,3", name="theta").shape
        torch.Size([4, 2, 3])
        >>> check_shape(torch.zeros(4, 3, 3), "B,2,3", name="theta")
        Traceback (most recent call last):
        ...
        ValueError: theta must have shape (B, 2, 3); got (4, 3, 3)
    """
    check_tensor(value, name)
    dims = [d.strip() for d in pattern.split(",")]
    shape = tuple(value.shape)
    leading = dims[0] == "..."
    fixed = dims[1:] if leading else dims
    expected = "(" + ", ".join(dims) + ")"
    got = "(" + ", ".join(str(s) for s in shape) + ")" if len(shape) != 1 else f"({shape[0]},)"
    ok = len(shape) >= len(fixed) if leading else len(shape) == len(fixed)
    if ok:
        tail = shape[len(shape) - len(fixed) :]
        names: dict[str, int] = {}
        for want, size in zip(fixed, tail):
            if want.isdigit():
                ok = ok and int(want) == size
            else:
                ok = ok and names.setdefault(want, size) == size
    if not ok:
        raise ValueError(f"{name} must have shape {expected}; got {got}")
    return value


def check_choice(value, choices, name: str):
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def check_size(size, name: str = "size", length: int = 2) -> tuple:
    """Check a size tuple of positive ints, e.g. ``(H, W)`` or ``(N, C, H, W)``; return it as a tuple."""
    try:
        size = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of {length} positive ints; got {size!r}") from None
    if len(size) != length or any(s <= 0 for s in size):
        what = {2: "(H, W)", 4: "(N, C, H, W)"}.get(length, f"{length} positive ints")
        raise ValueError(f"{name} must be {what} with positive entries; got {size}")
    return size


def check_positive_int(value, name: str) -> int:
    """Check that ``value`` is an int >= 1 (a count: channels, transformers, iterations); return it."""
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return value
