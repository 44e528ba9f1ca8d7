"""Checks for notebook 05 · Build and train a spatial transformer (solutions/05_train_an_stn/05_train_an_stn.ipynb).

One pair of functions per graded property:

=====================================================  ======================================================
exercise                                               checks
=====================================================  ======================================================
1 ``loc_features(in_size, *, kernels, pool, ...)``     :func:`check_loc_features`, :func:`grade_loc_features`
2 ``init_identity_(layer)``                            :func:`check_init_identity`, :func:`grade_init_identity`
3 ``stn_forward(x, localization, fc_loc, *, ...)``     :func:`check_stn_forward`, :func:`grade_stn_forward`,
                                                       :func:`check_stn_forward_gradients`,
                                                       :func:`grade_stn_forward_gradients`
4 ``theta_to_params(theta)``                           :func:`check_theta_to_params`, :func:`grade_theta_to_params`
5 ``similarity_theta(params)``                         :func:`check_similarity_theta`,
                                                       :func:`grade_similarity_theta`
=====================================================  ======================================================

The oracles: for exercise 1, the tutorial-style conv stack built with ``torch.nn`` and run on a
dummy tensor; for exercise 2, a fresh ``nn.Linear`` and what it outputs; for exercise 3,
``F.affine_grid`` / ``F.grid_sample`` and their autograd; for exercise 4, thetas built from known
angles with ``torch.cos`` / ``torch.sin`` and, for sheared thetas, the polar decomposition by
``torch.linalg.svd``; for exercise 5, the product of 3x3 translation, scale and rotation matrices
and autograd through the closed form. Every expected value is computed first; the learner's function then runs
inside :func:`reference_ops_blocked`.

Exercise 3 gets its grid generator and sampler as arguments. The checks pass in their own
``affine_grid_fn`` / ``grid_sample_fn``, built on torch's low-level ops captured when this module
is imported (before anything is blocked), which record how they were called; so the learner's
function runs with torch's ops switched off, and the checks can tell whether it passed the right
theta, size, input and grid.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import CheckFailed, allow_reference_kernels, call_learner, check_close, passed, reference_ops_blocked

__all__ = [
    "IDENTITY_THETA",
    "tutorial_loc_stack",
    "check_loc_features",
    "grade_loc_features",
    "check_init_identity",
    "grade_init_identity",
    "check_stn_forward",
    "grade_stn_forward",
    "check_stn_forward_gradients",
    "grade_stn_forward_gradients",
    "check_theta_to_params",
    "grade_theta_to_params",
    "check_similarity_theta",
    "grade_similarity_theta",
]

#: theta of the identity, row by row: [[1, 0, 0], [0, 1, 0]].
IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

# torch's low-level ops, captured before any check blocks the public names (see the module docstring).
_AFFINE_GRID_GENERATOR = torch.affine_grid_generator
_GRID_SAMPLER = torch.grid_sampler

_REMINDER = "Remember: theta says where each OUTPUT pixel reads in the INPUT (output -> input)."


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _coarser(dtype, than) -> bool:
    """Whether floating ``dtype`` holds fewer digits than floating ``than`` (float32 than float64)."""
    return torch.finfo(dtype).eps > torch.finfo(than).eps


# (text in torch's error message, hint) for errors whose message does not say what to change
_NO_GRAD_HINT = (
    "leaf Variable that requires grad is being used in an in-place operation",
    "change a Parameter's values inside `with torch.no_grad():` (autograd must not record the "
    "initialisation), e.g. layer.weight.zero_() and layer.bias.copy_(...)",
)
_FLATTEN_HINT = (
    "mat1 and mat2 shapes cannot be multiplied",
    "fc_loc is a stack of nn.Linear layers: give it flat features (N, F), e.g. features.flatten(1), "
    "not the localisation network's (N, C, H, W) maps",
)


def _call(fn, *args, name: str, on: str, error_hints=(), **kwargs):
    """:func:`~stnlib.checks.common.call_learner`, with a hint for the torch errors in ``error_hints``.

    Args:
        error_hints: pairs (text in torch's error message, hint), for errors that this exercise's typical
            mistakes cause and whose message does not say what to change.
    """
    try:
        return call_learner(fn, *args, name=name, on=on, **kwargs)
    except CheckFailed as err:
        cause = str(err.__cause__ or "")
        hints = [hint for text, hint in error_hints if text in cause]
        if not hints:
            raise
        raise CheckFailed(f"{err}" + "".join(f"\n  Hint: {h}" for h in hints)) from err.__cause__


def _backward(loss: torch.Tensor, *, name: str, on: str) -> None:
    """``loss.backward()``; an error in the backward pass of the learner's graph becomes a CheckFailed naming the input."""
    _call(loss.backward, name=f"{name} (backward pass through your result)", on=on)


# --------------------------------------------------------------------------- exercise 1: loc_features
def tutorial_loc_stack(kernels=(7, 5), pool: int = 2, channels=(8, 10), in_channels: int = 1) -> nn.Sequential:
    """The tutorial's localisation conv stack, generalised: for each layer conv(k) -> max-pool(pool) -> ReLU.

    Args:
        kernels: kernel size of each conv layer (the tutorial: (7, 5)).
        pool: max-pooling window and stride (the tutorial: 2).
        channels: output channels of each conv layer (the tutorial: (8, 10)).
        in_channels: channels of the input.

    Returns:
        ``nn.Sequential`` ending in ``nn.Flatten()``: (N, C, H, W) -> (N, F).

    Example:
        >>> tutorial_loc_stack()(torch.zeros(1, 1, 28, 28)).shape  # the tutorial's fc(90 -> 32)
        torch.Size([1, 90])
    """
    layers, previous = [], in_channels
    for kernel, out in zip(kernels, channels):
        layers += [nn.Conv2d(previous, out, kernel_size=kernel), nn.MaxPool2d(pool, stride=pool), nn.ReLU(True)]
        previous = out
    return nn.Sequential(*layers, nn.Flatten())


def _expected_features(in_size, kernels, pool, out_channels):
    """What the conv stack outputs per sample: an int, or None when torch refuses the input size."""
    channels = (4,) * (len(kernels) - 1) + (out_channels,)
    stack = tutorial_loc_stack(kernels, pool, channels)
    try:
        with torch.no_grad():
            out = stack(torch.zeros(1, 1, *in_size))
    except RuntimeError:  # a feature map with a side below 1
        return None
    return int(out.shape[1]) if out.numel() else None


def _loc_case(fn, in_size, kernels, pool, out_channels, *, hints=True) -> None:
    expected = _expected_features(in_size, kernels, pool, out_channels)
    on = f"in_size={tuple(in_size)}, kernels={tuple(kernels)}, pool={pool}, out_channels={out_channels}"
    with reference_ops_blocked():
        if expected is None:
            on += " (too small: a feature map would be empty)"
            try:
                got = fn(in_size, kernels=kernels, pool=pool, out_channels=out_channels)
            except ValueError:
                return
            except NotImplementedError:
                raise
            except Exception as err:  # noqa: BLE001 - report whatever came instead
                raise CheckFailed(
                    f"loc_features on {on}: expected ValueError, got {type(err).__name__}: {err}"
                ) from None
            raise CheckFailed(f"loc_features on {on}: expected ValueError, but it returned {got!r}")
    got = _call(fn, in_size, kernels=kernels, pool=pool, out_channels=out_channels, name="loc_features", on=on)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"loc_features on {on}: expected a Python int, got {type(got).__name__} {got!r}")
    if got != expected:
        message = f"loc_features on {on}: expected {expected} features, got {got}"
        if hints:
            message += "".join(f"\n  Hint: {hint}" for hint in _loc_hints(got, in_size, kernels, pool, out_channels))
        raise CheckFailed(message)
    if not isinstance(got, int):
        raise CheckFailed(f"loc_features on {on}: the value {got!r} is right, but return a Python int (int(...))")


def _loc_hints(got, in_size, kernels, pool, out_channels) -> list:
    """Hints for the usual mistakes: no floor, no shrinking by the kernel, rounding up."""

    def walk(shrink: bool, rounding) -> float:
        height, width = float(in_size[0]), float(in_size[1])
        for kernel in kernels:
            if shrink:
                height, width = height - kernel + 1, width - kernel + 1
            height, width = rounding(height / pool), rounding(width / pool)
        return out_channels * height * width

    hints = []
    if abs(got - walk(True, lambda v: v)) < 1e-6:
        hints.append("max-pooling rounds each side down (//), after every layer")
    if got in (walk(False, math.floor), walk(False, lambda v: v)):
        hints.append("a conv without padding shrinks each side by kernel - 1 before the pool")
    if got == walk(True, math.ceil):
        hints.append("max-pooling rounds down (floor), not up")
    return hints


def check_loc_features(fn) -> None:
    """Visible check of ``loc_features(in_size, *, kernels, pool, out_channels) -> int``.

    Cases: the tutorial's 28x28 (90 features) and 42x42, a non-square odd size where flooring
    matters, other kernels and pooling, three layers, and an input too small (ValueError).
    """
    cases = [
        ((28, 28), (7, 5), 2, 10),
        ((42, 42), (7, 5), 2, 10),
        ((29, 36), (7, 5), 2, 10),
        ((31, 24), (5, 3), 2, 6),
        ((40, 33), (3, 3, 3), 2, 5),
        ((30, 27), (5, 5), 3, 7),
        ((12, 30), (7, 5), 2, 10),
    ]
    for in_size, kernels, pool, channels in cases:
        _loc_case(fn, in_size, kernels, pool, channels)
    passed("loc_features: valid convs and floored max-pooling, (H, W) kept apart, ValueError when too small")


def grade_loc_features(fn) -> None:
    """Hidden tests of ``loc_features``: random sizes, kernels (1-4 layers), pooling and channels."""
    gen = torch.Generator().manual_seed(505)
    for _ in range(24):
        layers = int(torch.randint(1, 5, (), generator=gen))
        kernels = tuple(int(k) for k in torch.randint(1, 8, (layers,), generator=gen))
        pool = int(torch.randint(1, 4, (), generator=gen))
        height, width = (int(s) for s in torch.randint(5, 50, (2,), generator=gen))
        channels = int(torch.randint(1, 33, (), generator=gen))
        _loc_case(fn, (height, width), kernels, pool, channels, hints=False)
    print("loc_features: hidden tests passed")


# --------------------------------------------------------------------------- exercise 2: init_identity_
def _random_linear(gen: torch.Generator, in_features: int, out_features: int = 6, dtype=torch.float32) -> nn.Linear:
    layer = nn.Linear(in_features, out_features).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen, dtype=torch.float64))
    return layer


def _init_case(fn, layer: nn.Linear, features: torch.Tensor, *, on: str) -> None:
    """Run ``fn(layer)`` and check what the layer became (in place, trainable, identity for any input)."""
    weight_id, bias_id = id(layer.weight), id(layer.bias)
    expected_theta = torch.tensor(IDENTITY_THETA, dtype=layer.weight.dtype).expand(len(features), 6)
    name = "init_identity_"
    returned = _call(fn, layer, name=name, on=on, error_hints=(_NO_GRAD_HINT,))
    if returned is not None and returned is not layer:
        raise CheckFailed(f"{name} on {on}: return the same layer (or nothing), not a new object")
    if id(layer.weight) != weight_id or id(layer.bias) != bias_id:
        raise CheckFailed(
            f"{name} on {on}: the layer's weight/bias were replaced by new Parameters; change them in place "
            "(an optimiser built earlier would still hold the old ones). Use `with torch.no_grad():` and "
            "`.zero_()` / `.copy_(...)`."
        )
    if not (layer.weight.requires_grad and layer.bias.requires_grad):
        raise CheckFailed(
            f"{name} on {on}: weight and bias must stay trainable (requires_grad=True); theta is learned from here on"
        )
    if layer.weight.dtype != expected_theta.dtype or layer.bias.dtype != expected_theta.dtype:
        raise CheckFailed(
            f"{name} on {on}: keep the layer's dtype {_dtype_name(expected_theta.dtype)}; got weight "
            f"{_dtype_name(layer.weight.dtype)}, bias {_dtype_name(layer.bias.dtype)}\n"
            "  Hint: torch.tensor([...]) is float32 whatever the layer is; copy the values in place with "
            "layer.bias.copy_(torch.tensor([...])), which keeps the bias's dtype (assigning .data replaces it)"
        )
    check_close(layer.weight, torch.zeros_like(layer.weight), fn=name, on=on + ", the weight", atol=0.0)
    bias = layer.bias.detach()
    if bias.shape == (6,) and torch.equal(bias.double(), torch.tensor([1.0, 0, 0, 1, 0, 0], dtype=torch.float64)):
        raise CheckFailed(
            f"{name} on {on}: bias is [1, 0, 0, 1, 0, 0]; theta is read row by row, "
            "[[1, 0, 0], [0, 1, 0]] -> [1, 0, 0, 0, 1, 0]"
        )
    check_close(bias, expected_theta[0], fn=name, on=on + ", the bias (theta row by row)", atol=0.0)
    with torch.no_grad():
        out = layer(features)
    check_close(out, expected_theta, fn=name, on=on + ", the layer's output on random features", atol=0.0)
    layer.zero_grad()
    (layer(features) * torch.linspace(-1.0, 1.0, 6, dtype=features.dtype)).sum().backward()
    if layer.weight.grad is None or not bool(layer.weight.grad.abs().sum() > 0):
        raise CheckFailed(f"{name} on {on}: no gradient reaches the weight after the initialisation")


def check_init_identity(fn) -> None:
    """Visible check of ``init_identity_(layer)``: random Linear(32 -> 6) and Linear(90 -> 6) layers."""
    gen = torch.Generator().manual_seed(5)
    for in_features, dtype in ((32, torch.float32), (90, torch.float32), (90, torch.float64)):
        layer = _random_linear(gen, in_features, dtype=dtype)
        features = 3 * torch.randn(4, in_features, generator=gen, dtype=torch.float64).to(dtype)
        _init_case(fn, layer, features, on=f"a random nn.Linear({in_features}, 6), {_dtype_name(dtype)}")
    passed(
        "init_identity_: weight 0 and bias [1, 0, 0, 0, 1, 0] in place, in the layer's dtype (float32 and float64), "
        "so theta = identity for any input"
    )


def grade_init_identity(fn) -> None:
    """Hidden tests of ``init_identity_``: other sizes, float64, a layer inside ``nn.Sequential``."""
    gen = torch.Generator().manual_seed(55)
    for in_features, dtype in ((1, torch.float32), (17, torch.float64), (50, torch.float32), (128, torch.float64)):
        layer = _random_linear(gen, in_features, dtype=dtype)
        features = 5 * torch.randn(7, in_features, generator=gen, dtype=torch.float64).to(dtype)
        _init_case(fn, layer, features, on=f"a random nn.Linear({in_features}, 6), {_dtype_name(dtype)}")
    head = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), _random_linear(gen, 8))
    on = "the last layer of nn.Sequential(Linear(20, 8), ReLU(), Linear(8, 6))"
    _call(fn, head[-1], name="init_identity_", on=on, error_hints=(_NO_GRAD_HINT,))
    out = head(torch.randn(3, 20, generator=gen))
    check_close(
        out,
        torch.tensor(IDENTITY_THETA).expand(3, 6),
        fn="init_identity_",
        on="the last layer of nn.Sequential(Linear(20, 8), ReLU(), Linear(8, 6))",
        atol=0.0,
    )
    print("init_identity_: hidden tests passed")


# --------------------------------------------------------------------------- exercise 3: stn_forward
class _Recorder:
    """``affine_grid_fn`` / ``grid_sample_fn`` for the checks: torch's ops, recording every call."""

    def __init__(self, align_corners: bool, padding_mode: str = "zeros", on: str = ""):
        self.where = f"stn_forward on {on}" if on else "stn_forward"  # for the messages
        self.align_corners = align_corners
        self.padding = {"zeros": 0, "border": 1, "reflection": 2}[padding_mode]
        self.grid_calls, self.sample_calls = [], []

    def affine_grid(self, theta, size):
        self.grid_calls.append((theta, tuple(int(s) for s in size)))
        if not isinstance(theta, torch.Tensor) or theta.dim() != 3 or tuple(theta.shape[1:]) != (2, 3):
            shape = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
            raise CheckFailed(f"{self.where}: affine_grid_fn must get theta of shape (N, 2, 3); got {shape}")
        if len(size) != 4:
            raise CheckFailed(f"{self.where}: affine_grid_fn must get the size (N, C, H, W) of x; got {tuple(size)}")
        with allow_reference_kernels():
            return _AFFINE_GRID_GENERATOR(theta, [int(s) for s in size], self.align_corners)

    def grid_sample(self, input, grid):
        self.sample_calls.append((input, grid))
        if not isinstance(grid, torch.Tensor) or grid.dim() != 4 or grid.shape[-1] != 2:
            shape = tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__
            raise CheckFailed(
                f"{self.where}: grid_sample_fn(input, grid) must get a grid (N, H, W, 2) second; "
                f"got {shape} (is the order of the arguments right?)"
            )
        with allow_reference_kernels():
            return _GRID_SAMPLER(input, grid, 0, self.padding, self.align_corners)


def _loc_modules(gen: torch.Generator, channels: int, size, hidden: int | None, dtype) -> tuple[nn.Module, nn.Module]:
    """A small random localisation network: conv -> ReLU -> max-pool, and an fc_loc near the identity.

    The last layer's weights are small but not zero, so every sample gets its own theta.
    """
    conv = nn.Conv2d(channels, 3, kernel_size=3)
    localization = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
    features = 3 * ((size[0] - 2) // 2) * ((size[1] - 2) // 2)
    layers = [nn.Linear(features, hidden), nn.Tanh()] if hidden else []
    last = nn.Linear(hidden or features, 6)
    fc_loc = nn.Sequential(*layers, last)
    with torch.no_grad():
        for module in (localization, fc_loc):
            for p in module.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        last.weight.mul_(0.4)
        last.bias.copy_(
            torch.tensor(IDENTITY_THETA, dtype=torch.float64) + 0.2 * torch.randn(6, generator=gen, dtype=torch.float64)
        )
    return localization.to(dtype), fc_loc.to(dtype)


def _oracle(x, loc_input, localization, fc_loc, align_corners, padding_mode):
    theta = fc_loc(localization(x if loc_input is None else loc_input).flatten(1)).view(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
    return out, theta


def _call_stn_forward(fn, x, localization, fc_loc, recorder, loc_input, on):
    kwargs = dict(affine_grid_fn=recorder.affine_grid, grid_sample_fn=recorder.grid_sample)
    if loc_input is not None:
        kwargs["loc_input"] = loc_input
    result = _call(fn, x, localization, fc_loc, name="stn_forward", on=on, error_hints=(_FLATTEN_HINT,), **kwargs)
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"stn_forward on {on}: return a pair (warped, theta); got {type(result).__name__}")
    if len(recorder.grid_calls) != 1 or len(recorder.sample_calls) != 1:
        raise CheckFailed(
            f"stn_forward on {on}: call affine_grid_fn and grid_sample_fn once each; they were "
            f"called {len(recorder.grid_calls)} and {len(recorder.sample_calls)} times"
        )
    size = recorder.grid_calls[0][1]
    if size != tuple(x.shape):
        raise CheckFailed(
            f"stn_forward on {on}: affine_grid_fn must get size=x.shape={tuple(x.shape)} "
            f"(N, C, H, W: the output has the input's size); got {size}"
        )
    if recorder.sample_calls[0][0] is not x:
        what = "loc_input" if recorder.sample_calls[0][0] is loc_input else "another tensor"
        raise CheckFailed(
            f"stn_forward on {on}: the sampler must warp x itself, but it got {what}. "
            "loc_input only feeds the localisation network."
        )
    return result


def _forward_case(
    fn, x, localization, fc_loc, *, loc_input=None, align_corners=False, padding_mode="zeros", on: str, atol: float
) -> None:
    with torch.no_grad():
        expected, expected_theta = _oracle(x, loc_input, localization, fc_loc, align_corners, padding_mode)
        recorder = _Recorder(align_corners, padding_mode, on=on)
        warped, theta = _call_stn_forward(fn, x, localization, fc_loc, recorder, loc_input, on)
    mistakes = []
    if isinstance(theta, torch.Tensor) and theta.numel() == expected_theta.numel() and theta.dim() == 3:
        transposed = expected_theta.reshape(-1, 6).reshape(-1, 3, 2).transpose(1, 2)
        if theta.shape == transposed.shape and torch.allclose(theta.double(), transposed.double(), atol=atol):
            mistakes.append("the 6 numbers of fc_loc are theta row by row: .view(-1, 2, 3), not a transpose")
    if loc_input is not None:
        _, own_theta = _oracle(x, None, localization, fc_loc, align_corners, padding_mode)
        if (
            isinstance(theta, torch.Tensor)
            and theta.shape == own_theta.shape
            and torch.allclose(theta.double(), own_theta.double(), atol=atol)
        ):
            mistakes.append("theta must come from loc_input when it is given (the localisation network's input)")
    hints = "".join(f"\n  Hint: {m}" for m in mistakes)
    try:
        check_close(theta, expected_theta, fn="stn_forward", on=on + ", theta", atol=atol)
    except CheckFailed as err:
        raise CheckFailed(f"{err}{hints}") from None
    try:
        check_close(warped, expected, fn="stn_forward", on=on + ", the warped image", atol=atol)
    except CheckFailed as err:  # theta is right, the warp is not: the direction is the usual suspect
        raise CheckFailed(f"{err}{hints}\n  {_REMINDER}") from None


def check_stn_forward(fn) -> None:
    """Visible check of ``stn_forward``: a batch of 2 non-square images, with and without ``loc_input``."""
    gen = torch.Generator().manual_seed(50)
    size = (9, 12)
    localization, fc_loc = _loc_modules(gen, 1, size, 5, torch.float32)
    x = torch.rand(2, 1, *size, generator=gen)
    on = "x (2, 1, 9, 12), a random localisation net, align_corners=False"
    _forward_case(fn, x, localization, fc_loc, on=on, atol=1e-5)
    loc_input = (x - 0.13) / 0.31
    _forward_case(fn, x, localization, fc_loc, loc_input=loc_input, on=on + ", loc_input=(x - 0.13) / 0.31", atol=1e-5)
    localization, fc_loc = localization.double(), fc_loc.double()
    _forward_case(
        fn,
        x.double(),
        localization,
        fc_loc,
        on=on.replace("x (2, 1, 9, 12)", "x (2, 1, 9, 12) float64, the localisation net in float64 too"),
        atol=1e-9,
    )
    passed(
        "stn_forward: theta = fc_loc(flattened features).view(N, 2, 3), the grid of x's size, x warped, "
        "float32 and float64"
    )


def grade_stn_forward(fn) -> None:
    """Hidden tests of ``stn_forward``: batches, channels, float64, both align_corners, border padding."""
    gen = torch.Generator().manual_seed(5050)
    cases = [
        (3, 1, (10, 7), None, torch.float32, True, "zeros"),
        (4, 3, (8, 13), 4, torch.float64, False, "border"),
        (1, 2, (12, 12), 6, torch.float64, True, "zeros"),
        (5, 1, (11, 9), None, torch.float32, False, "zeros"),
    ]
    for n, channels, size, hidden, dtype, align_corners, padding in cases:
        localization, fc_loc = _loc_modules(gen, channels, size, hidden, dtype)
        x = torch.rand(n, channels, *size, generator=gen, dtype=torch.float64).to(dtype)
        atol = 1e-9 if dtype == torch.float64 else 1e-5
        on = f"x {tuple(x.shape)} {_dtype_name(dtype)}, align_corners={align_corners}, padding_mode={padding!r}"
        _forward_case(fn, x, localization, fc_loc, align_corners=align_corners, padding_mode=padding, on=on, atol=atol)
        loc_input = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
        _forward_case(
            fn,
            x,
            localization,
            fc_loc,
            loc_input=loc_input,
            align_corners=align_corners,
            padding_mode=padding,
            on=on + ", with loc_input",
            atol=atol,
        )
    print("stn_forward: hidden tests passed")


def _gradient_case(fn, x, localization, fc_loc, *, loc_input=None, align_corners=False, on: str, atol: float):
    """Compare the gradients of a weighted sum of the warped image w.r.t. every parameter (and x)."""
    gen = torch.Generator().manual_seed(int(x.numel()))
    weights = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype)
    loc_ref, fc_ref = copy.deepcopy(localization), copy.deepcopy(fc_loc)
    x_ref = x.detach().clone().requires_grad_(True)
    out, _ = _oracle(x_ref, loc_input, loc_ref, fc_ref, align_corners, "zeros")
    (out * weights).sum().backward()
    expected = {f"localization.{k}": p.grad for k, p in loc_ref.named_parameters()}
    expected.update({f"fc_loc.{k}": p.grad for k, p in fc_ref.named_parameters()})
    expected["x"] = x_ref.grad

    localization.zero_grad()
    fc_loc.zero_grad()
    x_in = x.detach().clone().requires_grad_(True)
    recorder = _Recorder(align_corners, on=on)
    warped, _ = _call_stn_forward(fn, x_in, localization, fc_loc, recorder, loc_input, on)
    if not isinstance(warped, torch.Tensor) or tuple(warped.shape) != tuple(x.shape):
        shape = f"shape {tuple(warped.shape)}" if isinstance(warped, torch.Tensor) else type(warped).__name__
        raise CheckFailed(
            f"stn_forward on {on}: expected the warped image of x's shape {tuple(x.shape)} first in the pair "
            f"(warped, theta), got {shape}"
        )
    if not warped.requires_grad:
        raise CheckFailed(
            f"stn_forward on {on}: the warped image carries no gradient (requires_grad=False); "
            "do not detach theta or use torch.no_grad(): theta is learned through the sampler"
        )
    _backward((warped * weights).sum(), name="stn_forward", on=on)
    got = {f"localization.{k}": p.grad for k, p in localization.named_parameters()}
    got.update({f"fc_loc.{k}": p.grad for k, p in fc_loc.named_parameters()})
    got["x"] = x_in.grad
    for name, grad in expected.items():
        if got[name] is None:
            raise CheckFailed(
                f"stn_forward on {on}: no gradient reaches {name}; the loss must flow from the warped "
                "image through the sampler and theta back into the localisation network"
            )
        check_close(got[name], grad, fn="stn_forward", on=f"{on}, d(loss)/d({name})", atol=atol, rtol=1e-4)


def check_stn_forward_gradients(fn) -> None:
    """Visible check: the loss on the warped image gives the localisation network torch's gradients."""
    gen = torch.Generator().manual_seed(51)
    size = (9, 12)
    localization, fc_loc = _loc_modules(gen, 1, size, 5, torch.float64)
    x = torch.rand(2, 1, *size, generator=gen, dtype=torch.float64)
    _gradient_case(fn, x, localization, fc_loc, on="x (2, 1, 9, 12) float64, align_corners=False", atol=1e-8)
    passed("stn_forward: gradients reach fc_loc and the localisation convs through theta and the sampler")


def grade_stn_forward_gradients(fn) -> None:
    """Hidden tests of the gradients of ``stn_forward``: float32 and float64, loc_input, both align_corners."""
    gen = torch.Generator().manual_seed(5151)
    for n, size, hidden, dtype, align_corners, with_loc in (
        (3, (10, 7), None, torch.float64, True, False),
        (2, (8, 11), 4, torch.float64, False, True),
        (4, (12, 9), 3, torch.float32, True, True),
    ):
        localization, fc_loc = _loc_modules(gen, 1, size, hidden, dtype)
        x = torch.rand(n, 1, *size, generator=gen, dtype=torch.float64).to(dtype)
        loc_input = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype) if with_loc else None
        atol = 1e-8 if dtype == torch.float64 else 1e-4
        on = f"x {tuple(x.shape)} {_dtype_name(dtype)}, align_corners={align_corners}, loc_input={with_loc}"
        _gradient_case(fn, x, localization, fc_loc, loc_input=loc_input, align_corners=align_corners, on=on, atol=atol)
    print("stn_forward gradients: hidden tests passed")


# --------------------------------------------------------------------------- exercise 4: theta_to_params
def _similarity_theta(angle_deg, scale, tx, ty, dtype=torch.float64) -> torch.Tensor:
    """(N, 2, 3) theta = [s R(angle) | t] from known parts, closed form (R as stnlib.geometry.rotation_matrix)."""
    rad = torch.as_tensor(angle_deg, dtype=torch.float64) * (math.pi / 180.0)
    s = torch.as_tensor(scale, dtype=torch.float64)
    c, si = s * torch.cos(rad), s * torch.sin(rad)
    tx, ty = torch.as_tensor(tx, dtype=torch.float64), torch.as_tensor(ty, dtype=torch.float64)
    rows = [torch.stack([c, -si, tx], -1), torch.stack([si, c, ty], -1)]
    return torch.stack(rows, -2).to(dtype)


def _polar_params(theta: torch.Tensor) -> torch.Tensor:
    """Oracle for any theta with det > 0: the rotation of the polar decomposition A = R P (by SVD)."""
    a = theta[:, :, :2].double()
    u, s, vh = torch.linalg.svd(a)
    rotation = u @ vh
    angle = torch.rad2deg(torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0]))
    scale = torch.sqrt(s[:, 0] * s[:, 1])
    return torch.stack([angle, scale, theta[:, 0, 2].double(), theta[:, 1, 2].double()], -1)


_PARAMS = ("angle_deg", "scale", "tx", "ty")  # the columns of theta_to_params's result


def _params_case(fn, theta: torch.Tensor, expected: torch.Tensor, *, on: str, atol: float) -> None:
    got = _call(fn, theta.clone(), name="theta_to_params", on=on)
    # Only a loss of precision fails here: a float32 result cannot hold float64 answers (its values fail anyway,
    # and "expected 30, got 30" would not say why).
    if isinstance(got, torch.Tensor) and got.is_floating_point() and _coarser(got.dtype, theta.dtype):
        raise CheckFailed(
            f"theta_to_params on {on}: expected dtype {_dtype_name(theta.dtype)} (that of theta), got "
            f"{_dtype_name(got.dtype)}\n  Hint: compute with theta's own entries (torch.atan2, torch.sqrt, "
            "torch.stack); torch.tensor(...) of Python numbers is float32, and .float() makes float32"
        )
    hints = []
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        g = got.detach().double()
        if torch.allclose(g[:, 0], -expected[:, 0], atol=atol) and not torch.allclose(
            g[:, 0], expected[:, 0], atol=atol
        ):
            hints.append(
                "the angle has the wrong sign: with R = [[cos, -sin], [sin, cos]], sin sits at theta[:, 1, 0], "
                "so angle = atan2(a10 - a01, a00 + a11)"
            )
        if torch.allclose(g[:, 0], expected[:, 0] * math.pi / 180, atol=atol):
            hints.append("return the angle in degrees (torch.rad2deg)")
        if torch.allclose(g[:, 1], expected[:, 1] ** 2, atol=atol) and not torch.allclose(
            g[:, 1], expected[:, 1], atol=atol
        ):
            hints.append("the determinant is scale squared; take its square root")
        wrapped = (expected[:, 0] + 90) % 180 - 90
        if torch.allclose(g[:, 0], wrapped, atol=atol) and not torch.allclose(g[:, 0], expected[:, 0], atol=atol):
            hints.append("use torch.atan2(y, x), not atan(y / x): atan only covers (-90, 90) degrees")
    try:
        check_close(
            got, expected, fn="theta_to_params", on=f"{on}; columns {', '.join(_PARAMS)}", atol=atol, labels=_PARAMS
        )
    except CheckFailed as err:
        raise CheckFailed(f"{err}" + "".join(f"\n  Hint: {h}" for h in hints)) from None


def check_theta_to_params(fn) -> None:
    """Visible check of ``theta_to_params``: thetas made from known angles, scales and shifts, float32 and float64."""
    angles = [30.0, -60.0, 120.0, -150.0, 0.0]
    scales = [1.0, 0.8, 1.25, 0.5, 2.0]
    tx, ty = [0.1, -0.3, 0.0, 0.25, -0.5], [-0.2, 0.05, 0.4, 0.0, 0.3]
    expected = torch.tensor([angles, scales, tx, ty], dtype=torch.float64).T
    for dtype, atol in ((torch.float32, 1e-4), (torch.float64, 1e-9)):
        theta = _similarity_theta(angles, scales, tx, ty, dtype)
        what = f"5 thetas [s R(angle) | t] with angles 30, -60, 120, -150, 0 ({_dtype_name(dtype)})"
        _params_case(fn, theta, expected, on=what, atol=atol)
    passed(
        "theta_to_params: angle (degrees, with atan2), scale = sqrt(det) and (tx, ty) of rotation-scale thetas, "
        "in theta's dtype"
    )


def grade_theta_to_params(fn) -> None:
    """Hidden tests: random similarity thetas (float32/float64), then sheared and stretched ones (polar oracle)."""
    gen = torch.Generator().manual_seed(5252)
    n = 16
    angles = torch.rand(n, generator=gen, dtype=torch.float64) * 350 - 175
    scales = 0.3 + 2 * torch.rand(n, generator=gen, dtype=torch.float64)
    shifts = torch.randn(2, n, generator=gen, dtype=torch.float64)
    expected = torch.stack([angles, scales, shifts[0], shifts[1]], -1)
    for dtype, atol in ((torch.float64, 1e-9), (torch.float32, 1e-3)):
        theta = _similarity_theta(angles, scales, shifts[0], shifts[1], dtype)
        _params_case(fn, theta, expected, on=f"{n} random rotation-scale thetas ({_dtype_name(dtype)})", atol=atol)
    # General affine thetas with det > 0: the similarity part is the closest rotation times sqrt(det).
    sheared = _similarity_theta(angles, scales, shifts[0], shifts[1]).clone()
    stretch = torch.eye(2, dtype=torch.float64) + 0.3 * torch.randn(n, 2, 2, generator=gen, dtype=torch.float64)
    stretch = torch.where(torch.linalg.det(stretch)[:, None, None] > 0, stretch, stretch.flip(-2))
    sheared[:, :, :2] = sheared[:, :, :2] @ stretch
    _params_case(
        fn, sheared, _polar_params(sheared), on=f"{n} random sheared and stretched thetas (float64)", atol=1e-9
    )
    print("theta_to_params: hidden tests passed")


# --------------------------------------------------------------------------- exercise 5: similarity_theta
def _similarity_oracle(params: torch.Tensor) -> torch.Tensor:
    """(N, 4) (angle in radians, s, tx, ty) -> (N, 2, 3) as a product of 3x3 matrices: T(t) @ S(s) @ R(a)."""
    p = params.detach().double()
    n = len(p)
    rotation = torch.zeros(n, 3, 3, dtype=torch.float64)
    rotation[:, 0, 0], rotation[:, 0, 1] = torch.cos(p[:, 0]), -torch.sin(p[:, 0])
    rotation[:, 1, 0], rotation[:, 1, 1] = torch.sin(p[:, 0]), torch.cos(p[:, 0])
    rotation[:, 2, 2] = 1.0
    scale = torch.diag_embed(torch.stack([p[:, 1], p[:, 1], torch.ones(n, dtype=torch.float64)], -1))
    shift = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    shift[:, 0, 2], shift[:, 1, 2] = p[:, 2], p[:, 3]
    return (shift @ scale @ rotation)[:, :2, :]


def _similarity_hints(got: torch.Tensor, params: torch.Tensor, expected: torch.Tensor, atol: float) -> list:
    hints = []
    p = params.detach().double()
    g = got.detach().double()
    degrees = p.clone()
    degrees[:, 0] = torch.deg2rad(p[:, 0])
    if torch.allclose(g, _similarity_oracle(degrees), atol=atol):
        hints.append("the angle is already in radians: use torch.cos(angle) directly, no conversion")
    if torch.allclose(g[:, :, :2], expected[:, :, :2].transpose(1, 2), atol=atol):
        hints.append("the minus sign sits on the top row: [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]]")
    if torch.allclose(g[:, :, 2], expected[:, :, 2] * p[:, 1:2], atol=atol) and not torch.allclose(
        g[:, :, 2], expected[:, :, 2], atol=atol
    ):
        hints.append("the shift is not scaled: tx and ty go into the last column as they are")
    if torch.allclose(g.flatten(1), expected.transpose(1, 2).flatten(1), atol=atol):
        hints.append("fill theta row by row: stack the rows along dim 1, each row (3 entries) along the last dim")
    return hints


def _similarity_case(fn, params: torch.Tensor, *, on: str, atol: float) -> None:
    expected = _similarity_oracle(params)
    got = call_learner(fn, params.clone(), name="similarity_theta", on=on)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"similarity_theta on {on}: expected a tensor of shape {tuple(expected.shape)}, got {type(got).__name__}"
        )
    if got.dtype != params.dtype:
        raise CheckFailed(
            f"similarity_theta on {on}: expected dtype {_dtype_name(params.dtype)} (that of params), "
            f"got {_dtype_name(got.dtype)}\n  Hint: build theta from params' own entries (torch.stack); "
            "torch.tensor(...) and torch.zeros(...) without dtype= are float32, and .float() makes float32"
        )
    try:
        check_close(got, expected, fn="similarity_theta", on=on, atol=atol)
    except CheckFailed as err:
        hints = _similarity_hints(got, params, expected, atol) if got.shape == expected.shape else []
        raise CheckFailed(f"{err}" + "".join(f"\n  Hint: {h}" for h in hints)) from None


def _similarity_gradient_case(fn, params: torch.Tensor, *, on: str, atol: float) -> None:
    """The gradient of a weighted sum of theta with respect to params, against the oracle's autograd."""
    weights = torch.linspace(-1.0, 1.0, 6, dtype=params.dtype).view(1, 2, 3)
    oracle_params = params.detach().double().requires_grad_(True)
    a, s, tx, ty = oracle_params.unbind(1)
    oracle = torch.stack(
        [
            torch.stack([s * torch.cos(a), -s * torch.sin(a), tx], 1),
            torch.stack([s * torch.sin(a), s * torch.cos(a), ty], 1),
        ],
        1,
    )
    (oracle * weights.double()).sum().backward()
    learner_params = params.detach().clone().requires_grad_(True)
    got = call_learner(fn, learner_params, name="similarity_theta", on=on)
    if not (isinstance(got, torch.Tensor) and got.requires_grad):
        raise CheckFailed(
            f"similarity_theta on {on}: the result does not depend on params for autograd (requires_grad is False), "
            "so no gradient would reach the localisation network\n  Hint: compute theta from params with torch "
            "operations (torch.cos, torch.stack, ...); torch.tensor([...]) or .item() cut the graph"
        )
    if tuple(got.shape) != tuple(oracle.shape):
        raise CheckFailed(f"similarity_theta on {on}: expected shape {tuple(oracle.shape)}, got {tuple(got.shape)}")
    _backward((got * weights).sum(), name="similarity_theta", on=on)
    if learner_params.grad is None:
        raise CheckFailed(f"similarity_theta on {on}: no gradient reached params")
    check_close(
        learner_params.grad,
        oracle_params.grad,
        fn="similarity_theta",
        on=f"{on}: d(sum of weights * theta) / d params",
        atol=atol,
    )


def check_similarity_theta(fn) -> None:
    """Visible check of ``similarity_theta``: the identity, a quarter turn, a known batch (float32 and float64),
    and a gradient."""
    identity = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    _similarity_case(fn, identity, on="params [[0, 1, 0, 0]] (the identity)", atol=1e-6)
    batch = torch.tensor([[math.pi / 2, 1.0, 0.0, 0.0], [math.pi / 6, 0.5, 0.2, -0.4], [-2.0, 1.5, -0.3, 0.1]])
    what = "3 params: a quarter turn, (30 deg, s 0.5, shift (0.2, -0.4)), (-2 rad, s 1.5)"
    _similarity_case(fn, batch, on=what, atol=1e-5)
    _similarity_case(fn, batch.double(), on=f"the same {what}, float64", atol=1e-10)
    _similarity_gradient_case(fn, batch, on="the same 3 params (float32)", atol=1e-4)
    passed(
        "similarity_theta: [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]] for a batch, in params' dtype "
        "(float32 and float64), with gradients"
    )


def grade_similarity_theta(fn) -> None:
    """Hidden tests: random batches in float32 and float64, angles beyond ±pi, and the gradient in float64."""
    gen = torch.Generator().manual_seed(5505)
    for dtype, atol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        n = 9
        params = torch.stack(
            [
                (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 4 * math.pi,
                0.2 + 2 * torch.rand(n, generator=gen, dtype=torch.float64),
                torch.randn(n, generator=gen, dtype=torch.float64),
                torch.randn(n, generator=gen, dtype=torch.float64),
            ],
            1,
        ).to(dtype)
        _similarity_case(fn, params, on=f"{n} random params ({_dtype_name(dtype)})", atol=atol)
    _similarity_gradient_case(fn, params.double(), on=f"{n} random params (float64)", atol=1e-10)
    print("similarity_theta: hidden tests passed")
