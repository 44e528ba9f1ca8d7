"""Build the student release ``notebooks/`` from the instructor source ``solutions/`` with nbgrader.

Run it as ``python -m stnlib.release`` (``make release`` does). It calls
``nbgrader generate_assignment`` once per assignment folder in ``solutions/``, with the
course's ``nbgrader_config.py``. Tests call :func:`generate` with another output folder
to check that ``notebooks/`` is exactly what nbgrader produces.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution

__all__ = ["assignments", "configure_grading", "generate", "points_table", "TagTestCells", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent


def assignments(source: Path | None = None) -> list[str]:
    """The assignment names: the folders of ``solutions/`` that hold a notebook, in order."""
    source = Path(source or ROOT / "solutions")
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def generate(release_dir: Path | None = None, names: list[str] | None = None, *, quiet: bool = True) -> Path:
    """Run ``nbgrader generate_assignment`` for every assignment into ``release_dir``.

    Args:
        release_dir: where the student notebooks go (default: the repo's ``notebooks/``).
        names: assignment names (default: all of :func:`assignments`).
        quiet: hide nbgrader's log unless it fails.

    Returns:
        The release directory.
    """
    release_dir = Path(release_dir or ROOT / "notebooks").resolve()
    for name in names or assignments():
        cmd = [
            sys.executable,
            "-m",
            "nbgrader",
            "generate_assignment",
            name,
            "--force",
            "--no-db",
            f"--CourseDirectory.root={ROOT}",
            f"--CourseDirectory.release_directory={release_dir}",
        ]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0 or "[ERROR]" in out.stderr:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{out.stdout}\n{out.stderr}")
        if not quiet:
            print(f"released {name} -> {release_dir / name}")
    return release_dir


class TagTestCells(NbGraderPreprocessor):
    """Tag every test cell (a grade cell that is not an answer) ``raises-exception``.

    In the student release this lets JupyterLab's "Run All" go on past a failing check, and
    tells nbval that these cells (and only these) may raise while the stubs are unsolved.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
        return cell, resources


def configure_grading(c) -> None:
    """The course's nbgrader settings for generating and grading, set on nbgrader's config ``c``.

    One place for what every course directory shares: the repository's ``nbgrader_config.py`` and
    a hub's course directory (``classroom/nbgrader/course_nbgrader_config.py``) both call it, and
    set only their folders (and, on a hub, the gradebook and the environment) themselves.

    - The student version: nbgrader 0.9's default steps, with :class:`TagTestCells` added before
      the final checksums (tags are not part of them).
    - Grading: a cell that runs longer than 30 s is interrupted, scores 0, and grading goes on.
    - A student who deletes a test cell is graded with the instructor's copy of it.
    """
    from nbgrader import preprocessors as pp

    c.GenerateAssignment.preprocessors = [
        pp.IncludeHeaderFooter,
        pp.InstantiateTests,
        pp.LockCells,
        pp.ClearSolutions,
        pp.ClearOutput,
        pp.CheckCellMetadata,
        pp.ComputeChecksums,
        pp.SaveCells,
        pp.ClearHiddenTests,
        pp.ClearMarkScheme,
        TagTestCells,
        pp.ComputeChecksums,
        pp.CheckCellMetadata,
    ]
    c.Execute.timeout = 30
    c.Execute.interrupt_on_timeout = True
    c.Execute.kernel_name = "python3"
    c.OverwriteCells.add_missing_cells = True


def points_table(source: Path | None = None) -> str:
    """A markdown table of the graded exercises and points of every assignment in ``solutions/``."""
    import nbformat

    source = Path(source or ROOT / "solutions")
    rows = ["| notebook | exercises | test cells | points |", "|---|---|---|---|"]
    total = 0.0
    for name in assignments(source):
        answers = tests = 0
        points = 0.0
        for path in sorted((source / name).glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type == "code" and meta.get("solution"):
                    answers += 1
                elif meta.get("grade"):
                    tests += 1
                    points += float(meta.get("points", 0))
        total += points
        rows.append(f"| {name} | {answers} | {tests} | {points:g} |")
    rows.append(f"| **total** | | | **{total:g}** |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="assignments to release (default: all)")
    parser.add_argument("--points-table", action="store_true", help="print the points per notebook and exit")
    args = parser.parse_args(argv)
    if args.points_table:
        print(points_table())
        return
    target = ROOT / "notebooks"
    if not args.names and target.exists():
        shutil.rmtree(target)  # a notebook removed from solutions/ disappears from the release too
    generate(target, args.names or None, quiet=False)


if __name__ == "__main__":
    main()
