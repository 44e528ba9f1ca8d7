"""Course-wide settings read from the environment.

``STN_FAST=1`` switches every notebook to a fast mode (small data, few steps); CI sets it.
Learners get the full mode by default.
"""

import os

__all__ = ["FAST", "fast_mode"]


def fast_mode() -> bool:
    """True when the environment variable ``STN_FAST`` is set to 1 (or true/yes)."""
    return os.environ.get("STN_FAST", "").strip().lower() in {"1", "true", "yes"}


#: Read once at import: ``from stnlib.config import FAST``.
FAST = fast_mode()
