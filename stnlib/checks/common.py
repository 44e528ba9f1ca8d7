"""Helpers shared by every notebook's checks: comparisons that explain themselves, and the
guard that keeps graded exercises from delegating to the reference ops."""

from __future__ import annotations

import contextlib
import functools
import io
import traceback
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from .. import blocking
from ..config import grading

__all__ = [
    "GUARDED_KERNELS",
    "allow_reference_kernels",
    "CheckFailed",
    "call_learner",
    "check_close",
    "check_raises",
    "passed",
    "reference_ops_blocked",
    "yours_or_reference",
]


_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # stnlib/
_TORCH_DIR = Path(torch.__file__).resolve().parent
_RED, _RESET = "\x1b[0;31m", "\x1b[0m"


def _where(filename: str) -> str:
    """A frame's file as IPython names it ("Cell In[3]") when it is a notebook cell, else the path."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        named = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:  # noqa: BLE001 - outside IPython, or another IPython: fall back to the path
        named = None
    return " ".join(named) if named else f'File "{filename}"'


def _learner_frames(err: BaseException) -> list[str]:
    """The frames of ``err``'s traceback that stnlib's checks called (the learner's own code), formatted.

    The frames up to the end of the first run of stnlib frames are the notebook's check cell and the checker;
    later stnlib frames (the guard that watches torch's kernels) and torch's own frames say nothing about the
    learner's code. What is left is the learner's function and what it called.
    """
    frames = traceback.extract_tb(err.__traceback__)
    ours = [Path(f.filename).resolve().is_relative_to(_PACKAGE_DIR) for f in frames]
    start = ours.index(True) if True in ours else 0
    while start < len(frames) and ours[start]:
        start += 1
    lines = []
    for frame, in_stnlib in zip(frames[start:], ours[start:]):
        if in_stnlib or Path(frame.filename).resolve().is_relative_to(_TORCH_DIR):
            continue
        lines.append(f"  {_where(frame.filename)}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


def _short_traceback(err: BaseException, message: str) -> list[str]:
    """What IPython shows for ``err`` (its ``_render_traceback_``): the message and the learner's own frames.

    A failed check used to print 30 to 60 lines of the checker's code before its message. The message
    already names the input, the expected and the actual value; the only frames worth showing are the
    learner's, when their code raised (the error is chained as ``__cause__``).
    """
    lines = [f"{_RED}{type(err).__name__}{_RESET}: {message}"]
    cause = err.__cause__
    if cause is not None:
        frames = _learner_frames(cause)
        if frames:
            lines += ["", f"Where your code raised {type(cause).__name__}:", *frames]
    return lines


class CheckFailed(AssertionError):
    """An exercise check failed. The message says on which input and what differs.

    In a notebook, IPython shows only the message (and, when the learner's own code raised, the lines of it
    where it did), not the frames of the checks: see :meth:`_render_traceback_`. The cell still fails, so
    nbgrader scores it 0 and its feedback shows the message. Outside IPython it is an ordinary
    ``AssertionError``.
    """

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows instead of the traceback (IPython's hook for custom tracebacks)."""
        return _short_traceback(self, str(self))


def _number(v: float) -> str:
    return f"{v + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0: a "-0" reads like a sign error


def _fmt(t: torch.Tensor, limit: int = 6) -> str:
    flat = t.detach().flatten()
    values = ", ".join(_number(v) for v in flat[:limit].tolist())
    more = ", ..." if flat.numel() > limit else ""
    return f"[{values}{more}]" if t.dim() else _number(t.item())


def _row_around(t: torch.Tensor, index: tuple, limit: int = 6) -> tuple[str, str]:
    """The innermost row of ``t`` that holds ``index``, as (label like "[0, 1, :]", values near index[-1])."""
    if not index:
        return "", _fmt(t)
    row = t[index[:-1]]
    start = max(0, min(index[-1] - limit // 2, row.numel() - limit))
    label = "[" + ", ".join([str(i) for i in index[:-1]] + [":"]) + "]"
    shown = ", ".join(_number(v) for v in row[start : start + limit].tolist())
    return label, ("[..., " if start > 0 else "[") + shown + (", ...]" if start + limit < row.numel() else "]")


def check_close(
    got,
    expected: torch.Tensor,
    *,
    fn: str,
    on: str,
    atol: float = 1e-5,
    rtol: float = 0.0,
    mistakes=(),
    labels=(),
) -> None:
    """Compare a learner's result with the expected tensor; raise :class:`CheckFailed` if they differ.

    Checks, in order: that ``got`` is a tensor, its shape, that it is finite, then the values
    (``|got - expected| <= atol + rtol * |expected|``). The message names the function, the
    input, the expected and actual values and where they differ most, e.g.::

        affine_grid on identity theta, size=(1, 1, 2, 3), align_corners=False:
        expected [..., 1] = -0.5, got -1; max |diff| 0.5 at index (0, 0, 0, 1) (atol 1e-05)

    Args:
        got: what the learner's function returned.
        expected: (...) tensor from the oracle.
        fn: the function's name, for the message.
        on: a short description of the input.
        atol, rtol: tolerances.
        mistakes: pairs (tensor that a typical mistake returns, hint): when the values differ and
            ``got`` matches one of them (within ``atol``), the message ends with a ``Hint:`` line.
        labels: names of the entries along the last axis, when they are different quantities (e.g.
            ``("dV/dx", "dV/dy")``): the message names the one where the values differ most, e.g.
            ``expected 0.1 at index (3, 2) (tx), got 0.3``.
    """
    try:
        _check_close(got, expected, fn=fn, on=on, atol=atol, rtol=rtol, labels=labels)
    except CheckFailed as err:
        for wrong, hint in mistakes:
            if (
                isinstance(got, torch.Tensor)
                and got.shape == wrong.shape
                and torch.allclose(got.detach().double(), wrong.detach().double(), atol=atol, rtol=0.0)
            ):
                raise CheckFailed(f"{err}\n  Hint: {hint}") from None
        raise


def _check_close(got, expected: torch.Tensor, *, fn: str, on: str, atol: float, rtol: float, labels=()) -> None:
    where = f"{fn} on {on}"
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{where}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    got_d = got.detach().to(torch.float64)
    exp_d = expected.detach().to(torch.float64)
    if not torch.isfinite(got_d).all():
        bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(got_d))[0])
        raise CheckFailed(f"{where}: result has inf/nan, first at index {bad}")
    diff = (got_d - exp_d).abs()
    allowed = atol + rtol * exp_d.abs()
    if (diff > allowed).any():
        flat_i = int(torch.argmax(diff - allowed))
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_i), diff.shape)) if diff.dim() else ()
        label, expected_row = _row_around(exp_d, index)
        _, got_row = _row_around(got_d, index)
        named = f" ({labels[index[-1]]})" if index and len(labels) == diff.shape[-1] else ""
        raise CheckFailed(
            f"{where}: expected {_fmt(exp_d[index])} at index {index}{named}, got {_fmt(got_d[index])}; "
            f"max |diff| {float(diff.max()):.3g} (atol {atol:g})\n"
            f"  expected{label} {expected_row}\n  got{label}      {got_row}"
        )


def check_raises(call, exc_type, *, fn: str, on: str, match: str | None = None) -> None:
    """Check that ``call()`` raises ``exc_type`` (and, if given, that ``match`` is in its message)."""
    try:
        call()
    except exc_type as err:
        if match is not None and match not in str(err):
            raise CheckFailed(
                f"{fn} on {on}: raised {exc_type.__name__} as it should, but the message "
                f"{str(err)!r} does not mention {match!r}"
            ) from None
        return
    except Exception as err:  # noqa: BLE001 - we want to report whatever came instead
        raise CheckFailed(f"{fn} on {on}: expected {exc_type.__name__}, got {type(err).__name__}: {err}") from None
    raise CheckFailed(f"{fn} on {on}: expected {exc_type.__name__}, but nothing was raised")


def passed(what: str) -> None:
    """Print the one line a learner sees when a check passes."""
    print(f"OK: {what}")


def _refuse(name: str, *args, **kwargs):
    raise RuntimeError(
        f"{name} is not available while this exercise is graded: write it with tensor operations "
        "(the point of the exercise is to build it by hand)"
    )


#: The kernels that compute a sampling grid or sample an image. While an exercise is checked no call
#: may reach them, whatever Python name led there (F.grid_sample, torch.ops.aten..., torchvision).
GUARDED_KERNELS = frozenset(
    {
        "aten::affine_grid_generator",
        "aten::grid_sampler",
        "aten::grid_sampler_2d",
        "aten::grid_sampler_3d",
        "aten::_grid_sampler_2d_cpu_fallback",
        "aten::cudnn_grid_sampler",
        # other libraries' samplers: torchvision's RoI align samples bilinearly at any point, deformable
        # convolution too, and interpolation resamples a whole image
        "torchvision::roi_align",
        "torchvision::ps_roi_align",
        "torchvision::deform_conv2d",
        "aten::upsample_bilinear2d",
        "aten::_upsample_bilinear2d_aa",
        "aten::upsample_bicubic2d",
        "aten::upsample_nearest2d",
        "aten::_upsample_nearest_exact2d",
    }
)
_kernels_allowed = 0  # > 0 inside allow_reference_kernels(): the checks' own calls


class _NoReferenceKernels(TorchDispatchMode):
    """Sees every ATen op that runs (after autograd) and refuses the :data:`GUARDED_KERNELS`."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in GUARDED_KERNELS and not _kernels_allowed:
            raise RuntimeError(
                f"torch's kernel {name} is not available while this exercise is graded (it was reached through "
                "some library call): write it with tensor operations (the point of the exercise is to build it "
                "by hand)"
            )
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def allow_reference_kernels():
    """Let the checks' own helpers (e.g. the samplers handed to a learner's function) reach the guarded kernels."""
    global _kernels_allowed
    _kernels_allowed += 1
    try:
        yield
    finally:
        _kernels_allowed -= 1


@contextlib.contextmanager
def reference_ops_blocked():
    """Make torch's ``affine_grid`` / ``grid_sample`` and stnlib's reference functions raise inside the block.

    Checks compute the oracle's answer first, then call the learner's function inside this
    block, so that code which delegates to the reference ops fails with a message saying so.
    It patches the names where they are looked up: ``torch.nn.functional.affine_grid`` /
    ``grid_sample``, the low-level ``torch.affine_grid_generator`` / ``torch.grid_sampler*``
    that those call (so an alias taken with ``from torch.nn.functional import grid_sample``
    fails too), and switches off every stnlib function marked ``@reference`` (all of
    ``stnlib.geometry`` and ``stnlib.sampling``, the grids of ``stnlib.warps``, the reference
    copies in ``stnlib.checks``; see :mod:`stnlib.blocking`). Patching names cannot be complete
    (``torch.ops.aten.grid_sampler_2d``, torchvision's ``rotate``, ...), so underneath it a
    ``TorchDispatchMode`` refuses the ATen kernels themselves (:data:`GUARDED_KERNELS`), by
    whatever route they are reached.
    """
    targets = {
        (F, "affine_grid"): "torch.nn.functional.affine_grid",
        (F, "grid_sample"): "torch.nn.functional.grid_sample",
        (torch, "affine_grid_generator"): "torch.affine_grid_generator",
        (torch, "grid_sampler"): "torch.grid_sampler",
        (torch, "grid_sampler_2d"): "torch.grid_sampler_2d",
    }
    with contextlib.ExitStack() as stack:
        for (owner, attr), name in targets.items():
            stack.enter_context(mock.patch.object(owner, attr, functools.partial(_refuse, name)))
        stack.enter_context(_NoReferenceKernels())
        previous = blocking.set_blocked("exercises are checked without stnlib's reference functions: write it by hand")
        try:
            yield
        finally:
            blocking.set_blocked(previous)


def call_learner(fn, *args, name: str, on: str, **kwargs):
    """Call the learner's ``fn(*args, **kwargs)`` with the reference ops switched off.

    ``NotImplementedError`` (an unsolved stub) and :class:`CheckFailed` pass through; any other
    error becomes a :class:`CheckFailed` that names the function and the input (the original
    error stays chained to it), so the learner sees *where* their code broke.

    Args:
        fn: the learner's function.
        name: its name, for the message.
        on: a short description of the input, for the message.
    """
    with reference_ops_blocked():
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as err:
            # an unsolved stub: in a notebook, say so in one line instead of the checker's traceback
            message = (
                f"{name} is not written yet: replace `raise NotImplementedError` in its exercise cell with your "
                "code, run that cell, then this one"
            )
            err._render_traceback_ = functools.partial(_stub_traceback, err, message)
            raise
        except CheckFailed:
            raise
        except Exception as err:  # noqa: BLE001 - report whatever the learner's code raised
            raise CheckFailed(f"{name} on {on}: raised {type(err).__name__}: {err}{_hint_for(err)}") from err


def _stub_traceback(err: NotImplementedError, message: str) -> list[str]:
    """IPython's lines for a stub's NotImplementedError: the message; where it came from if not the stub itself."""
    lines = [f"{_RED}NotImplementedError{_RESET}: {message}"]
    frames = _learner_frames(err)
    if len(frames) > 2:  # more than the stub's own `raise NotImplementedError` line: say where it came from
        lines += ["", "Where it was raised:", *frames]
    return lines


def _hint_for(err: Exception) -> str:
    """A hint for errors whose torch message does not say what to change."""
    text = str(err)
    if "scalar type" in text or "same dtype" in text or ("Float" in text and "Double" in text):
        return (
            "\n  Hint: two tensors of different dtypes met: create every new tensor in the dtype of the inputs "
            "(e.g. dtype=theta.dtype), not torch's default float32"
        )
    return ""


def _passes(yours, checks) -> tuple[bool, str]:
    """Run the visible ``checks`` on ``yours`` quietly: (True, "") or (False, why it is not used)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for check in checks:
                check(yours)
    except NotImplementedError:
        return False, "is not done yet"
    except Exception:  # noqa: BLE001 - CheckFailed, or anything the learner's function raised
        return False, "does not pass its check yet (the check cell after it says why)"
    return True, ""


def yours_or_reference(yours, reference, *, exercise: str, check):
    """Return a function that calls ``yours`` once it passes its check, and ``reference`` until then.

    Demo cells after an exercise use it, so that a learner who has not finished the exercise, or
    whose answer is still wrong, sees the figures as they should be and is told so in one line,
    instead of plots and tables drawn silently from a wrong answer. The first call runs the
    exercise's visible ``check`` quietly: if ``yours`` passes, every call uses it; if it fails (or
    is still a stub), every call uses ``reference`` and one line says so, e.g.::

        Note: Exercise 1 (per_class_error) does not pass its check yet (the check cell after it says why),
        so this cell uses stnlib's reference instead.

    Run the demo cell again after fixing the exercise (and its check cell) to use yours. While
    nbgrader grades the notebook (``stnlib.config.grading()``) the demos use the reference straight
    away: they earn no points, and a learner's function that never returns must cost its own test
    cells the 30 s timeout, not every figure after it as well.

    Args:
        yours: the learner's function (its stub raises ``NotImplementedError``).
        reference: stnlib's function with the same signature.
        exercise: how to name the exercise in the notice, e.g. ``"Exercise 3 (affine_grid_by_hand)"``.
        check: the exercise's visible check, ``check(fn)`` (e.g. ``nb06.check_per_class_error``), or a
            tuple of them when the exercise has several check cells.
    """
    checks = tuple(check) if isinstance(check, (tuple, list)) else (check,)
    chosen = []

    @functools.wraps(reference)
    def call(*args, **kwargs):
        if grading():
            return reference(*args, **kwargs)
        if not chosen:
            ok, why = _passes(yours, checks)
            if not ok:
                print(f"Note: {exercise} {why}, so this cell uses stnlib's reference instead.")
            chosen.append(yours if ok else reference)
        return chosen[0](*args, **kwargs)

    return call
