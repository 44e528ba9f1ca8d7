"""Course-wide settings read from the environment.

``STN_FAST=1`` switches every notebook to a fast mode (small data, few steps); CI sets it.
Learners get the full mode by default. While nbgrader executes a notebook (validate,
autograde) it sets ``NBGRADER_EXECUTION``; training cells then use the fast budget too, so
grading never waits on a training run.
"""

import os

__all__ = ["FAST", "GRADING", "fast_mode", "grading"]


def fast_mode() -> bool:
    """True when the environment variable ``STN_FAST`` is set to 1 (or true/yes)."""
    return os.environ.get("STN_FAST", "").strip().lower() in {"1", "true", "yes"}


#: Read once at import: ``from stnlib.config import FAST``.
FAST = fast_mode()


def grading() -> bool:
    """True while nbgrader executes the notebook (it sets ``NBGRADER_EXECUTION``)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


#: True under nbgrader's validate/autograde.
GRADING = grading()
