"""Helpers for tests that read the course notebooks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
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


@dataclass
class Exercise:
    """One graded exercise of an instructor notebook: its answer cell and the test cells after it."""

    answer_id: str
    solution: str  # the answer cell's source with the solution markers removed
    tests: dict[str, float] = field(default_factory=dict)  # test grade_id -> points

    @property
    def points(self) -> float:
        return sum(self.tests.values())


def exercises(source_nb: Path) -> list[Exercise]:
    """The exercises of an instructor notebook: each answer cell with the test cells after it."""
    found: list[Exercise] = []
    for cell in nbformat.read(source_nb, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta:
            continue
        if meta.get("solution"):
            solved = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", cell.source, flags=re.M)
            found.append(Exercise(meta["grade_id"], solved))
        elif meta.get("grade"):
            assert found, f"{source_nb.name}: test cell {meta['grade_id']} comes before any answer cell"
            found[-1].tests[meta["grade_id"]] = float(meta["points"])
    return [e for e in found if e.tests]
