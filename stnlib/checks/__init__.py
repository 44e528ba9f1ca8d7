"""Checks run by the exercise cells of the notebooks.

Each notebook has a module here (``nb01``, ``nb02``, ...) with two kinds of function per
exercise:

- ``check_<name>(fn)``: the *visible* check a learner runs. It tries a few small cases and,
  on the first that fails, raises :class:`CheckFailed` saying which input, what was
  expected and what came back. The expected values come from torch's own ops (the oracle).
- ``grade_<name>(fn)``: the *hidden* tests an instructor's autograder runs. More cases
  (batches, non-square sizes, float64, both ``align_corners``), with torch's and stnlib's
  reference ``affine_grid`` / ``grid_sample`` made unavailable (:func:`reference_ops_blocked`),
  so that a function which only delegates to them scores 0.

The common helpers live in :mod:`stnlib.checks.common`.
"""

from .common import (
    CheckFailed,
    call_learner,
    check_close,
    check_raises,
    passed,
    reference_ops_blocked,
    yours_or_reference,
)

__all__ = [
    "CheckFailed",
    "call_learner",
    "check_close",
    "check_raises",
    "passed",
    "reference_ops_blocked",
    "yours_or_reference",
]
