"""Course-wide settings read from the environment, and where the course keeps its files.

``STN_FAST=1`` switches every notebook to a fast mode (small data, few steps); CI sets it.
Learners get the full mode by default. While nbgrader executes a notebook (validate,
autograde) it sets ``NBGRADER_EXECUTION``; training cells then use the small budget too, so
grading never waits on a training run. ``SMALL`` is the one switch the notebooks read: fast
mode or grading. ``STN_OFFLINE=1`` keeps ``stnlib.data`` from touching the network.
``STN_THREADS=n`` sets how many CPU threads the training notebooks (05-07) give torch
(``THREADS``, default 1: see :data:`DEFAULT_THREADS`).

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
    "THREADS",
    "DEFAULT_THREADS",
    "REPO_ROOT",
    "env_flag",
    "fast_mode",
    "grading",
    "offline_mode",
    "torch_threads",
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


#: The torch threads of the training notebooks when ``STN_THREADS`` is not set. One thread: the course's
#: models are small (batches of 64 images of 28x28 to 60x60), so a second thread has little to share,
#: while on a busy machine (a laptop doing other work, a JupyterHub server shared by several students)
#: threads that wait for each other collapse: on 2 cores with 4 busy processes, notebook 06's first eight
#: models trained 13.5 times slower on two threads than on one (``benchmarks/notebook_times.py``).
DEFAULT_THREADS = 1


def torch_threads() -> int:
    """How many CPU threads the training notebooks give torch: ``STN_THREADS`` if set, else :data:`DEFAULT_THREADS`.

    Raises:
        ValueError: ``STN_THREADS`` is set to something other than a positive integer.

    Example:
        >>> import os
        >>> os.environ.get("STN_THREADS") is not None or torch_threads() == DEFAULT_THREADS
        True
    """
    value = os.environ.get("STN_THREADS", "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"STN_THREADS must be a positive integer (the number of torch threads); got {value!r}")
    return int(value)


#: Read once at import: ``from stnlib.config import FAST``.
FAST = fast_mode()

#: True under nbgrader's validate/autograde.
GRADING = grading()

#: Small budgets (few digits, few epochs) for every training cell: fast mode or grading.
SMALL = FAST or GRADING

#: The training notebooks call ``torch.set_num_threads(THREADS)`` in their setup cell (see :func:`torch_threads`).
THREADS = torch_threads()


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
