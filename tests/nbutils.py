"""Helpers for tests that read the course notebooks."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths(folder: Path) -> list[Path]:
    """Every notebook under ``folder`` (one per assignment folder), sorted."""
    return sorted(p for p in folder.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def nbgrader_cells(path: Path) -> list:
    """The cells of a notebook that carry nbgrader metadata."""
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if "nbgrader" in c.metadata]


def answer_namespace(path: Path) -> dict:
    """Execute a notebook's answer cells (nbgrader ``solution`` cells) and return their namespace.

    The namespace starts with ``torch``, ``F`` and ``math``, the only names answer cells may
    rely on from the setup cell.
    """
    ns = {"torch": torch, "F": F, "math": math, "__name__": "answers"}
    for cell in nbgrader_cells(path):
        if cell.cell_type == "code" and cell.metadata["nbgrader"].get("solution"):
            exec(compile(cell.source, f"{path.name}:{cell.metadata['nbgrader']['grade_id']}", "exec"), ns)
    return ns
