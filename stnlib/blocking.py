"""Switch stnlib's reference functions off while an exercise is checked.

The course asks learners to build ``affine_grid``, ``grid_sample`` and the geometry helpers by
hand. ``stnlib`` ships working versions of all of them (the notebooks use them for demos), so
an exercise could simply call one. While :func:`stnlib.checks.reference_ops_blocked` is active,
every function marked ``@reference`` raises instead, and such a shortcut scores 0.
"""

from __future__ import annotations

import functools

__all__ = ["reference", "is_blocked", "set_blocked"]

_blocked_reason: str | None = None


def is_blocked() -> bool:
    """True while reference functions are switched off."""
    return _blocked_reason is not None


def set_blocked(reason: str | None) -> str | None:
    """Switch reference functions off (``reason`` is a message) or on (``None``); return the old value."""
    global _blocked_reason
    previous, _blocked_reason = _blocked_reason, reason
    return previous


def reference(fn):
    """Mark ``fn`` as a reference implementation: it raises ``RuntimeError`` while blocked."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _blocked_reason is not None:
            raise RuntimeError(
                f"stnlib.{fn.__module__.split('.')[-1]}.{fn.__name__} is not available here: {_blocked_reason}"
            )
        return fn(*args, **kwargs)

    return wrapper
