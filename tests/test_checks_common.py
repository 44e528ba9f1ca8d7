"""What a learner sees when a check fails (one message, not the checker's traceback), and how the demo cells
after an exercise choose between the learner's function and stnlib's reference (``yours_or_reference``)."""

from __future__ import annotations

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from stnlib.checks import CheckFailed, nb06, yours_or_reference


def _right(a, b):
    return torch.remainder(a - b + 180.0, 360.0) - 180.0


def _plus_180(a, b):
    rad = torch.deg2rad(a - b)
    return torch.rad2deg(torch.atan2(torch.sin(rad), torch.cos(rad)))


def _stub(a, b):
    raise NotImplementedError()


def _raises_inside(a, b):
    wrapped = torch.remainder(a - b + 180.0, 360.0)
    return wrapped.view(7, 7) - 180.0  # a shape error in the learner's own line


def _caught(check, fn) -> BaseException:
    with pytest.raises(Exception) as err:
        check(fn)
    return err.value


# --------------------------------------------------------------------------- the short traceback
def test_failed_check_renders_its_message_without_the_checker():
    err = _caught(nb06.check_angle_difference_deg, _plus_180)
    assert isinstance(err, CheckFailed)
    lines = err._render_traceback_()
    text = "\n".join(lines)
    assert lines[0].startswith("\x1b[0;31mCheckFailed\x1b[0m: angle_difference_deg on the seam")
    assert str(err) in text  # the whole message: input, expected, got and the hint
    assert "Hint: [-180, 180) holds -180" in text
    assert "stnlib" not in text.replace("stnlib's", "")  # no frame of the checks, no path into the package
    assert "Where your code raised" not in text  # nothing raised in the learner's code


def test_error_in_the_learners_code_names_their_line_only():
    err = _caught(nb06.check_angle_difference_deg, _raises_inside)
    lines = err._render_traceback_()
    text = "\n".join(lines)
    assert "raised RuntimeError" in lines[0]
    assert "Where your code raised RuntimeError:" in text
    assert "in _raises_inside" in text and "wrapped.view(7, 7) - 180.0" in text
    assert "stnlib/checks" not in text and "call_learner" not in text and "site-packages" not in text


def test_unsolved_stub_says_so_in_one_line():
    err = _caught(nb06.check_angle_difference_deg, _stub)
    assert type(err) is NotImplementedError  # nbgrader and the tests still see the stub's own error
    assert err._render_traceback_() == [
        "\x1b[0;31mNotImplementedError\x1b[0m: angle_difference_deg is not written yet: replace "
        "`raise NotImplementedError` in its exercise cell with your code, run that cell, then this one"
    ]


def test_ordinary_python_still_sees_an_assertion_error():
    """Outside IPython a CheckFailed is an AssertionError with the usual traceback (pytest, scripts)."""
    err = _caught(nb06.check_angle_difference_deg, _plus_180)
    assert isinstance(err, AssertionError) and err.__traceback__ is not None


@pytest.mark.slow
def test_a_failing_check_cell_in_a_kernel(tmp_path):
    """In a real kernel the error output holds the message alone: a few lines, no frame of stnlib's checks."""
    cells = [
        "import torch\nfrom stnlib.checks import nb06",
        "def angle_difference_deg(a, b):\n    rad = torch.deg2rad(a - b)\n"
        "    return torch.rad2deg(torch.atan2(torch.sin(rad), torch.cos(rad)))",
        "nb06.check_angle_difference_deg(angle_difference_deg)",
        "def per_class_error(logits, labels, num_classes):\n    raise NotImplementedError()",
        "nb06.check_per_class_error(per_class_error)",
        "def per_class_error(logits, labels, num_classes):\n    wrong = logits.argmax(1) != labels\n"
        "    return torch.bincount(labels, weights=wrong[None])",
        "nb06.check_per_class_error(per_class_error)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    errors = {i: o for i, c in enumerate(nb.cells) for o in c.outputs if o.output_type == "error"}
    assert sorted(errors) == [2, 4, 6]
    for out in errors.values():
        text = "\n".join(out.traceback)
        assert len(out.traceback) <= 5 and "stnlib/checks" not in text and "interactiveshell" not in text
    assert errors[2].ename == "CheckFailed" and "on the seam" in errors[2].evalue
    assert "Hint: [-180, 180) holds -180" in "\n".join(errors[2].traceback)
    assert errors[4].ename == "NotImplementedError" and "is not written yet" in errors[4].traceback[0]
    assert "Where your code raised RuntimeError:" in errors[6].traceback
    assert any(line.startswith("  Cell In[6], line 3, in per_class_error") for line in errors[6].traceback)


# --------------------------------------------------------------------------- yours_or_reference
def _counting(fn):
    calls = []

    def counted(*args):
        calls.append(args)
        return fn(*args)

    return counted, calls


_A, _B = torch.tensor([10.0, 170.0]), torch.tensor([-20.0, -170.0])


@pytest.mark.parametrize(
    "yours, note",
    [
        (
            _stub,
            "Note: Exercise 4 (angle_difference_deg) is not done yet, so this cell uses stnlib's reference instead.",
        ),
        (
            _plus_180,
            "Note: Exercise 4 (angle_difference_deg) does not pass its check yet (the check cell after it says why), "
            "so this cell uses stnlib's reference instead.",
        ),
        (_raises_inside, "does not pass its check yet"),
    ],
    ids=["stub", "wrong answer", "answer that raises"],
)
def test_reference_until_the_check_passes(yours, note, capsys, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    reference, used = _counting(_right)
    demo = yours_or_reference(
        yours, reference, exercise="Exercise 4 (angle_difference_deg)", check=nb06.check_angle_difference_deg
    )
    for _ in range(3):
        torch.testing.assert_close(demo(_A, _B), torch.tensor([30.0, -20.0]))
    out = capsys.readouterr().out
    assert out.count("Note:") == 1 and note in out  # one line, however often the demo calls it
    assert len(used) == 3


def test_a_passing_answer_is_used_silently(capsys, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    yours, calls = _counting(_right)
    reference, used = _counting(_right)
    demo = yours_or_reference(yours, reference, exercise="Exercise 4", check=nb06.check_angle_difference_deg)
    demo(_A, _B)
    demo(_A, _B)
    assert capsys.readouterr().out == ""  # the check's own "OK: ..." line stays quiet
    assert used == [] and len(calls) > 2 and calls[-1][0] is _A  # the check's calls, then the demo's


def test_every_check_must_pass(capsys, monkeypatch):
    """Exercises with several check cells: the answer is used only if it passes all of them."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)

    def first_column(theta):  # passes check_rotation_from_theta, not the sheared one
        return torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))

    reference, used = _counting(nb06.rotation_from_theta_reference.__wrapped__)
    both = (nb06.check_rotation_from_theta, nb06.check_rotation_from_theta_sheared)
    demo = yours_or_reference(first_column, reference, exercise="Exercise 2", check=both)
    demo(torch.eye(2, 3)[None])
    assert "does not pass its check yet" in capsys.readouterr().out and len(used) == 1


def test_under_the_grader_the_reference_is_used_without_checking(capsys, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    yours, calls = _counting(_right)
    demo = yours_or_reference(yours, _right, exercise="Exercise 4", check=nb06.check_angle_difference_deg)
    demo(_A, _B)
    assert calls == [] and capsys.readouterr().out == ""
