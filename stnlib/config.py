"""Course-wide settings read from the environment, and where the course keeps its files.

``STN_FAST=1`` switches every notebook to a fast mode (small data, few steps); CI sets it.
Learners get the full mode by default. While nbgrader executes a notebook (validate,
autograde) it sets ``NBGRADER_EXECUTION``; training cells then use the small budget too, so
grading never waits on a training run. ``SMALL`` is the one switch the notebooks read: fast
mode or grading. ``STN_OFFLINE=1`` keeps ``stnlib.data`` from touching the network.

Paths: ``data_dir()`` (``$STN_DATA_DIR`` or ``data/``), ``artifacts_dir()`` (checkpoints the
notebooks and the command line write, ``$STN_ARTIFACTS_DIR`` or ``artifacts/``) and
``results_path(name)`` (the committed benchmark results, ``benchmarks/results/<name>``), all
relative to the repository root unless the environment says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "FAST",
    "GRADING",
    "SMALL",
    "REPO_ROOT",
    "env_flag",
    "fast_mode",
    "grading",
    "offline_mode",
    "data_dir",
    "artifacts_dir",
    "results_path",
]

#: The repository root (stnlib is installed in editable mode from it).
REPO_ROOT = Path(__file__).resolve().parent.parent


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is 1, true or yes (any case).

    Example:
        >>> env_flag("STN_NOT_SET_ANYWHERE")
        False
    """
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def fast_mode() -> bool:
    """True when ``STN_FAST`` is set to 1 (or true/yes)."""
    return env_flag("STN_FAST")


def grading() -> bool:
    """True while nbgrader executes the notebook (it sets ``NBGRADER_EXECUTION``)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def offline_mode() -> bool:
    """True when ``STN_OFFLINE`` is 1 (or true/yes): never touch the network."""
    return env_flag("STN_OFFLINE")


#: Read once at import: ``from stnlib.config import FAST``.
FAST = fast_mode()

#: True under nbgrader's validate/autograde.
GRADING = grading()

#: Small budgets (few digits, few epochs) for every training cell: fast mode or grading.
SMALL = FAST or GRADING


def data_dir() -> Path:
    """Where datasets live: ``$STN_DATA_DIR`` if set, else ``data/`` at the repository root."""
    return Path(os.environ.get("STN_DATA_DIR") or REPO_ROOT / "data")


def artifacts_dir(*parts: str) -> Path:
    """Where checkpoints are written: ``$STN_ARTIFACTS_DIR`` or ``artifacts/`` at the repository root.

    Args:
        parts: sub-folders, e.g. ``artifacts_dir("05_train_an_stn")``.

    Example:
        >>> artifacts_dir("runs").parts[-2:]
        ('artifacts', 'runs')
    """
    root = Path(os.environ.get("STN_ARTIFACTS_DIR") or REPO_ROOT / "artifacts")
    return root.joinpath(*parts)


def results_path(name: str) -> Path:
    """The committed benchmark results file ``benchmarks/results/<name>`` (it may not exist).

    Example:
        >>> results_path("rotation.json").parts[-3:]
        ('benchmarks', 'results', 'rotation.json')
    """
    return REPO_ROOT / "benchmarks" / "results" / name
