"""How long nbgrader takes to autograde one submission of each assignment, on this machine.

nbgrader autogrades one submission at a time, so the seconds per submission times the class size
is how long the instructor waits after collecting. Run it on the server that will grade (with the
course environment active), before the term starts:

    python classroom/time_autograde.py                        # every assignment, 2 submissions each
    python classroom/time_autograde.py 01_affine_matrices 05_train_an_stn --submissions 3

For each assignment it builds a throw-away course directory, generates the student version from
``solutions/``, makes ``--submissions`` submissions (the release with every answer filled in from
the instructor's solution, as a student who solved everything would hand in), and times
``nbgrader autograde <assignment> --student <id>`` for each one, with ``STN_FAST=1`` as the course's
grading configuration sets it. It prints one line per assignment (the median seconds per
submission, what that means for a class of 200, and the load average) and writes them as JSON to
``artifacts/classroom/autograde_timing.json``. Each time includes starting nbgrader (a few seconds);
the formgrader, which grades inside its running server, saves that part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
OUT = ROOT / "artifacts" / "classroom" / "autograde_timing.json"


def solved_release(release_nb: Path, source_nb: Path):
    """The student version with every answer cell replaced by the instructor's solution."""
    nb = nbformat.read(release_nb, as_version=4)
    solutions = {
        c.metadata["nbgrader"]["grade_id"]: re.sub(
            r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", c.source, flags=re.M
        )
        for c in nbformat.read(source_nb, as_version=4).cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            cell.source = solutions[grade_id]
    return nb


def nbgrader(course: Path, *args: str) -> float:
    """Run one nbgrader command in ``course``; return its wall time in seconds."""
    env = dict(os.environ, STN_FAST="1", STN_OFFLINE="1", STN_DATA_DIR=str(course / "data"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took


def time_assignment(assignment: str, submissions: int, workdir: Path) -> dict:
    course = workdir / assignment
    shutil.copytree(SOLUTIONS / assignment, course / "source" / assignment)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n"
    )
    nbgrader(course, "generate_assignment", assignment, "--force")
    students = [f"student{i + 1:02d}" for i in range(submissions)]
    for student in students:
        for source_nb in sorted((course / "source" / assignment).glob("*.ipynb")):
            target = course / "submitted" / student / assignment / source_nb.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(solved_release(course / "release" / assignment / source_nb.name, source_nb), target)
    seconds = []
    loads = []
    for student in students:
        seconds.append(nbgrader(course, "autograde", assignment, "--student", student, "--force"))
        loads.append(os.getloadavg()[0])
    median = statistics.median(seconds)
    return {
        "assignment": assignment,
        "seconds": [round(s, 1) for s in seconds],
        "median_s": round(median, 1),
        "class_of_200_min": round(200 * median / 60, 1),
        "load_avg_1min": [round(v, 2) for v in loads],
        "cpus": os.cpu_count(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", help="assignment folders of solutions/ (default: all)")
    parser.add_argument("--submissions", type=int, default=2, help="submissions to time per assignment (default 2)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON file for the results (default {OUT})")
    args = parser.parse_args(argv)
    if args.submissions < 1:
        parser.error(f"--submissions must be at least 1, got {args.submissions}")
    names = args.assignments or sorted(p.name for p in SOLUTIONS.iterdir() if any(p.glob("*.ipynb")))
    unknown = [n for n in names if not (SOLUTIONS / n).is_dir()]
    if unknown:
        parser.error(f"no such assignment in solutions/: {', '.join(unknown)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="stn-autograde-timing-") as tmp:
        for name in names:
            row = time_assignment(name, args.submissions, Path(tmp))
            results.append(row)
            print(
                f"{name}: {row['median_s']:.1f} s per submission (runs {row['seconds']}), "
                f"a class of 200 in {row['class_of_200_min']:.0f} min; "
                f"{row['cpus']} CPUs, load average {row['load_avg_1min']}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
