"""The classroom pipeline, end to end: real nbgrader, a real sqlite gradebook, no mocks.

For every assignment, simulated students submit, nbgrader autogrades them, writes feedback
and exports grades, and we check each score in the gradebook:

- ``full``: the instructor's solution -> full marks;
- ``blank``: the untouched release -> 0;
- ``partial``: every other exercise solved, the rest answered wrongly (``return None``) -> exactly the
  points of the solved exercises, and feedback that shows each failed check's message (not the checks' code);
- ``adversarial``: an infinite loop in exercise 1, a syntax error in exercise 2, exercise 3
  unsolved with its test cells edited to pass, exercise 4 solved with its test cells deleted,
  the rest solved, and a cell printing megabytes -> 0 on exercises 1-3, full marks on the rest
  (the deleted and edited test cells are graded in the instructor's version), in bounded time;
- ``delegate``: every exercise that can be answered by calling torch's ``affine_grid`` /
  ``grid_sample`` or stnlib's reference does so, the rest solved -> 0 on those exercises.

Slow (minutes): it runs every notebook five times through nbgrader. Each assignment gets its
own course directory and gradebook, and two assignments are graded at a time.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbutils import ROOT, SOLUTIONS, Exercise, exercises

from stnlib import release

pytestmark = pytest.mark.slow

# All assignments by default; STN_PIPELINE_ASSIGNMENTS=05_train_an_stn,06_experiments grades only those.
ASSIGNMENTS = [
    a
    for a in release.assignments()
    if not os.environ.get("STN_PIPELINE_ASSIGNMENTS") or a in os.environ["STN_PIPELINE_ASSIGNMENTS"].split(",")
]

# Bodies that answer an exercise by calling a reference implementation instead of writing it.
# Keyed by the answer cell's grade_id; each must score 0. Every assignment with an exercise that
# has a reference twin should appear here.
_TO_NORM_TRUE = (
    "h, w = image.shape\n"
    "g = torch.tensor([[[[2 * x_pix / (w - 1) - 1, 2 * y_pix / (h - 1) - 1]]]], dtype=image.dtype)\n"
)
DELEGATES: dict[str, str] = {
    # 01: stnlib.geometry (and the reference copies in stnlib.checks.nb01), torch.linalg.inv
    "nb01_to_homogeneous": "from stnlib.checks import nb01\nreturn nb01.to_homogeneous_reference(points_xy)",
    "nb01_from_homogeneous": "from stnlib.checks import nb01\nreturn nb01.from_homogeneous_reference(points_h)",
    "nb01_rotation_by_hand": "from stnlib import geometry\nreturn geometry.rotation_matrix(angle_deg)",
    "nb01_rotate_about": (
        "from stnlib import geometry\nreturn geometry.about_point(geometry.rotation_matrix(angle_deg), center_xy)"
    ),
    "nb01_invert_affine_by_hand": "return torch.linalg.inv(matrix)",
    "nb01_matrix_from_theta": "from stnlib import geometry\nreturn geometry.theta_to_matrix(theta)",
    # 02: stnlib.geometry and torch's affine_grid
    "nb02_pixel_to_norm": (
        "from stnlib import geometry\n"
        "return geometry.pixel_to_normalised(xy_pix, size=size, align_corners=align_corners)"
    ),
    "nb02_norm_to_pixel": (
        "from stnlib import geometry\n"
        "return geometry.normalised_to_pixel(xy_norm, size=size, align_corners=align_corners)"
    ),
    "nb02_theta_shift_pixels": (
        "from stnlib import geometry\n"
        "move = geometry.translation_matrix(float(dx_pix), float(dy_pix))\n"
        "return geometry.theta_from_pixel_transform(move, src_size=size, align_corners=align_corners)"
    ),
    # stnlib.warps computes what base_grid and affine_grid_by_hand ask for (a homography with a last row 0, 0, 1)
    "nb02_base_grid": "from stnlib import warps\nreturn warps.base_grid((height, width), align_corners=align_corners)",
    "nb02_affine_grid_by_hand": (
        "from stnlib import warps\n"
        "last = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype).expand(theta.shape[0], 1, 3)\n"
        "return warps.projective_grid(torch.cat([theta, last], 1), size, align_corners=align_corners)"
    ),
    # 04: stnlib.geometry builds the thetas
    "nb04_theta_mirror": "from stnlib import geometry\nreturn geometry.compose_theta(scale_x=-1.0)",
    "nb04_theta_rotate_90": "from stnlib import geometry\nreturn geometry.compose_theta(rotation_deg=-90.0)",
    # 05: the models' own similarity transform
    "nb05_similarity_theta": "from stnlib import models\nreturn models.params_to_theta(params, 'similarity')",
    # 03: torch's grid_sample (and its autograd), stnlib.sampling
    "nb03_nearest_one": _TO_NORM_TRUE
    + "return F.grid_sample(image[None, None], g, mode='nearest', align_corners=True)[0, 0, 0, 0]",
    # another library that samples images: torchvision's RoI align, a zero-sized box at the point
    # (on the image padded with one row and column of zeros, since RoI align clamps to the border)
    "nb03_bilinear_one": (
        "from torchvision.ops import roi_align\n"
        "padded = F.pad(image, (1, 1, 1, 1))[None, None]\n"
        "box = torch.tensor([[0.0, x_pix + 1.5, y_pix + 1.5, x_pix + 1.5, y_pix + 1.5]], dtype=image.dtype)\n"
        "return roi_align(padded, box, output_size=1, sampling_ratio=1, aligned=True)[0, 0, 0, 0]"
    ),
    # torch's operator namespace reaches the sampler kernel under another name
    "nb03_bilinear_sample": "return torch.ops.aten.grid_sampler_2d(input, grid, 0, 0, align_corners)",
    "nb03_pad_coords": (
        "from stnlib import sampling\nreturn sampling.apply_padding(coord_pix, size, padding_mode, align_corners)"
    ),
    # 07: stnlib.warps' thin-plate splines (a model's TPS grid and scipy's spline: tests/test_checks_nb07.py)
    "nb07_tps_kernel": "from stnlib import warps\nreturn warps.tps_kernel(r2)",
    "nb07_tps_system": "from stnlib import warps\nreturn warps.tps_system(control_xy)",
    "nb07_tps_grid_by_hand": (
        "from stnlib import warps\nreturn warps.tps_grid(offsets, control_xy, size, align_corners=align_corners)"
    ),
    "nb03_bilinear_grad_one": (
        "h, w = image.shape\n"
        "xy = torch.tensor([x_pix, y_pix], dtype=image.dtype, requires_grad=True)\n"
        "scale = torch.tensor([2 / (w - 1), 2 / (h - 1)], dtype=image.dtype)\n"
        "v = F.grid_sample(image[None, None], (xy * scale - 1).view(1, 1, 1, 2), align_corners=True)\n"
        "return torch.autograd.grad(v.sum(), xy)[0]"
    ),
}

LOOP_BOUND_S = 240  # one student's autograde with an infinite loop: 30 s per test cell that calls it


def with_body(source: str, body: str) -> str:
    """Replace the solution region of an answer cell by ``body`` (indented like the markers)."""
    match = re.search(r"^([ \t]*)### BEGIN SOLUTION.*?### END SOLUTION[ \t]*$", source, flags=re.M | re.S)
    assert match, "answer cell without solution markers"
    indent = match.group(1)
    return source[: match.start()] + "\n".join(indent + line for line in body.splitlines()) + source[match.end() :]


def answer_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {
        c.metadata.nbgrader["grade_id"]: c
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }


def make_submission(name: str, release_nb: Path, source_nb: Path, exs: list[Exercise]):
    """Build one simulated student's notebook; return it and the expected score per test cell."""
    nb = nbformat.read(release_nb, as_version=4)
    source = nbformat.read(source_nb, as_version=4)
    answers = answer_cells(nb)
    src_answers = answer_cells(source)
    expected = {t: 0.0 for e in exs for t in e.tests}

    def solve(e: Exercise):
        answers[e.answer_id].source = e.solution
        expected.update(e.tests)

    if name == "full":
        for e in exs:
            solve(e)
    elif name == "partial":
        for e in exs[::2]:
            solve(e)
        for e in exs[1::2]:  # wrong answers: their checks fail with CheckFailed, not NotImplementedError
            answers[e.answer_id].source = with_body(src_answers[e.answer_id].source, "return None")
    elif name == "adversarial":
        loop, syntax, edited = exs[:3]
        deleted = exs[3] if len(exs) > 3 else None
        for e in exs[3:]:
            solve(e)
        answers[loop.answer_id].source = with_body(src_answers[loop.answer_id].source, "while True:\n    pass")
        answers[syntax.answer_id].source = syntax.solution + "\nthis line is not python\n"
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") in edited.tests:
                cell.source = '"""edited by the student"""\nprint("all good")'
        if deleted is not None:
            nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in deleted.tests]
        flood = nbformat.v4.new_code_cell('print("spam " * 600_000)  # about 3.6 MB of output')
        nb.cells.insert(1, flood)
    elif name == "delegate":
        for e in exs:
            if e.answer_id in DELEGATES:
                answers[e.answer_id].source = with_body(src_answers[e.answer_id].source, DELEGATES[e.answer_id])
            else:
                solve(e)
    elif name != "blank":
        raise ValueError(name)
    return nb, expected


STUDENTS = ["full", "blank", "partial", "adversarial", "delegate"]


def nbgrader(course: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def grade_assignment(root: Path, assignment: str) -> dict:
    """Release one assignment in its own course directory, submit every student, grade, feed back."""
    shutil.copytree(SOLUTIONS / assignment, root / "source" / assignment)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n"
    )
    for student in STUDENTS:
        nbgrader(root, "db", "student", "add", student)
    nbgrader(root, "generate_assignment", assignment, "--force")
    expected, timings, structure = {}, {}, {}
    for source_nb in sorted((root / "source" / assignment).glob("*.ipynb")):
        exs = exercises(source_nb)
        assert len(exs) >= 3, f"{source_nb.name}: the adversarial cases need at least 3 exercises"
        structure[(assignment, source_nb.stem)] = exs
        for student in STUDENTS:
            nb, exp = make_submission(student, root / "release" / assignment / source_nb.name, source_nb, exs)
            target = root / "submitted" / student / assignment / source_nb.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            expected[(student, assignment, source_nb.stem)] = exp
    for student in STUDENTS:
        start = time.monotonic()
        nbgrader(root, "autograde", assignment, "--student", student, "--force")
        timings[(student, assignment)] = time.monotonic() - start
    nbgrader(root, "generate_feedback", assignment, "--force")
    nbgrader(root, "export", "--to", str(root / "grades.csv"))
    return dict(expected=expected, timings=timings, structure=structure, scores=gradebook_scores(root, assignment))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Grade every assignment (two at a time, each in its own course directory)."""
    base = tmp_path_factory.mktemp("courses")
    results = {
        "roots": {a: base / a for a in ASSIGNMENTS},
        "expected": {},
        "timings": {},
        "structure": {},
        "scores": {},
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in pool.map(lambda a: grade_assignment(base / a, a), ASSIGNMENTS):
            for key in ("expected", "timings", "structure", "scores"):
                results[key].update(done[key])
    return results


def gradebook_scores(root: Path, assignment: str) -> dict:
    """Every grade in a course's gradebook: (student, assignment, notebook, test grade_id) -> score."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in STUDENTS:
            for notebook in gb.find_submission(assignment, student).notebooks:
                for grade in notebook.grades:
                    scores[(student, assignment, notebook.name, grade.name)] = grade.score
    return scores


@pytest.fixture(scope="module")
def scores(course):
    return course["scores"]


def test_delegates_name_real_answer_cells():
    known = {e.answer_id for path in SOLUTIONS.glob("*/*.ipynb") for e in exercises(path)}
    assert set(DELEGATES) <= known, f"DELEGATES names unknown answer cells: {set(DELEGATES) - known}"


# Guards besides reference_ops_blocked that a checks module uses, switched off below.
EXTRA_GUARDS = {"nb01": ["_only_2x2_inverses"]}


@pytest.mark.parametrize("answer_id", sorted(DELEGATES))
def test_delegates_are_right_answers_but_for_the_block(answer_id):
    """Each delegating answer passes its checks once the guards are off: its 0 comes from the guard."""
    import contextlib
    import importlib
    import math
    from unittest import mock

    import torch
    import torch.nn.functional as F

    module_name = answer_id.split("_")[0]
    module = importlib.import_module(f"stnlib.checks.{module_name}")
    source_nb = next(SOLUTIONS.glob(f"{module_name[2:]}_*/*.ipynb"))
    (exercise,) = [e for e in exercises(source_nb) if e.answer_id == answer_id]
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nbformat.read(source_nb, 4).cells}
    ns = {"torch": torch, "F": F, "math": math, module_name: module}
    exec(with_body(cells[answer_id], DELEGATES[answer_id]), ns)
    with contextlib.ExitStack() as stack:
        from stnlib.checks import common

        for owner in (common, module):  # the shared guard, and the module's own name for it if it has one
            if hasattr(owner, "reference_ops_blocked"):
                stack.enter_context(mock.patch.object(owner, "reference_ops_blocked", contextlib.nullcontext))
        for name in EXTRA_GUARDS.get(module_name, []):
            stack.enter_context(mock.patch.object(module, name, lambda *a, **k: contextlib.nullcontext()))
        for test_id in exercise.tests:
            exec(cells[test_id], dict(ns))


@pytest.mark.parametrize("student", STUDENTS)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_scores_in_gradebook(course, scores, student, assignment):
    for (who, a, notebook), exp in course["expected"].items():
        if who != student or a != assignment:
            continue
        got = {test_id: scores[(student, a, notebook, test_id)] for test_id in exp}
        assert got == exp, f"{student} on {a}/{notebook}: expected {exp}, gradebook has {got}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_full_and_blank_totals(course, scores, assignment):
    for (a, notebook), exs in course["structure"].items():
        if a != assignment:
            continue
        total = sum(e.points for e in exs)
        got_full = sum(s for (who, aa, nb, _), s in scores.items() if (who, aa, nb) == ("full", a, notebook))
        got_blank = sum(s for (who, aa, nb, _), s in scores.items() if (who, aa, nb) == ("blank", a, notebook))
        assert (got_full, got_blank) == (total, 0.0)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_infinite_loop_is_bounded(course, assignment):
    assert course["timings"][("adversarial", assignment)] < LOOP_BOUND_S


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_html_for_every_student(course, assignment):
    for student in STUDENTS:
        files = list((course["roots"][assignment] / "feedback" / student / assignment).glob("*.html"))
        assert files, f"no feedback for {student} on {assignment}"
        assert all(f.stat().st_size > 1000 for f in files)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_shows_the_message_of_a_failed_check(course, assignment):
    """A failed check scores 0 (test_scores_in_gradebook) and its feedback shows the check's message, without
    the traceback through stnlib's checks: CheckFailed for a wrong answer, one line for an unsolved stub."""
    for student, message in (("partial", "CheckFailed"), ("blank", "is not written yet")):
        folder = course["roots"][assignment] / "feedback" / student / assignment
        html = "".join(f.read_text() for f in folder.glob("*.html"))
        assert message in html, f"{student} on {assignment}: no {message!r} in the feedback"
        assert "stnlib/checks/" not in html and "call_learner" not in html, f"{student} on {assignment}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_gradebook_intact_and_export(course, assignment):
    root = course["roots"][assignment]
    con = sqlite3.connect(root / "gradebook.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with open(root / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["assignment"], r["student_id"]) for r in rows} == {(assignment, s) for s in STUDENTS}
    assert {r["student_id"]: float(r["raw_score"]) for r in rows}["full"] > 0
