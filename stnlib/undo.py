"""How far a trained transformer undoes each test sample's distortion (the "undo statistics").

Introduced in notebook 05 (the upright recipe) and used in notebook 06, by ``python -m stnlib.train``
(the ``undo:`` line and the ``"undo"`` entry of the metrics JSON) and by the benchmarks.

Every distorted test digit of R, RTS, P and TC carries its ground truth: the theta that placed
the clean digit in the canvas. Its inverse is the *ideal* theta of a transformer, the one that
brings the digit back to the clean pose. We compare, sample by sample, what the transformer
learned with that ideal:

- ``rotation_slope``: the least-squares slope of the learned rotation against the ideal one, in
  degrees. 1: the rotation is undone; 0: it is ignored (left to the classifier); 0.5: half of it.
- ``rotation_corr``: their correlation.
- ``angle_residual_median``: the median of |learned - ideal| rotation, in degrees, after removing
  the mean offset (the "mean pose" a transformer brings every digit to need not be upright:
  a constant tilt is as good for the classifier).
- ``scale_slope``, ``shift_slope``: the same slope for the scale (sqrt |det| of the 2x2 part) and
  for the translation (both coordinates together).
- ``scale_mean``, ``scale_ideal_mean``: the mean learned and ideal scale.

A statistic is ``None`` ("n/a" in the printed line) where the distortion does not vary the
quantity: R has no scale and no shift, TC no rotation. For P the affine part of the homography
is used (its last row divided out); E (a thin-plate spline) has no affine ground truth. A
transformer that is not affine (projective, thin-plate spline) is measured by its affine part
(the model's ``affine_theta``).

MNIST addition (notebook 07) has a ground truth per channel, and a model may have several
transformers: :func:`attention_stats` compares every transformer with every channel and reports,
for each transformer, the channel whose shift it undoes best; the printed line says it follows
that channel only when it undoes at least half of the shift (``FOLLOWS``). Transformers and
channels are counted from 0, as the tensors index them.

Convention:
    theta is ``src_norm_trans_dst_norm`` with ``align_corners=False``; a rotation angle is that
    of the rotation closest to theta's 2x2 part, ``atan2(a10 - a01, a00 + a11)``, positive =
    clockwise on screen (y points down).
"""

from __future__ import annotations

import torch

from .blocking import reference
from .data import to_float
from .validation import check_shape
from .warps import affine_part  # noqa: F401 - part of this module's API (used by the statistics)

__all__ = [
    "UNDO_KEYS",
    "rotation_from_theta",
    "angle_difference_deg",
    "affine_part",
    "ideal_theta",
    "undo_stats_from_theta",
    "attention_stats",
    "undo_stats",
    "format_undo",
]

#: The entries of :func:`undo_stats_from_theta`, in the order they are reported.
UNDO_KEYS = (
    "rotation_slope",
    "rotation_corr",
    "angle_residual_median",
    "scale_slope",
    "shift_slope",
    "scale_mean",
    "scale_ideal_mean",
    "n",
)
_VARIES = 1e-6  # a quantity whose standard deviation is below this does not vary
#: A transformer "follows" a channel (MNIST addition) when it undoes at least half of that digit's shift.
FOLLOWS = 0.5


def _rotation_deg(theta: torch.Tensor) -> torch.Tensor:
    a = theta[..., :2, :2]
    return torch.rad2deg(torch.atan2(a[..., 1, 0] - a[..., 0, 1], a[..., 0, 0] + a[..., 1, 1]))


def _wrap_deg(difference: torch.Tensor) -> torch.Tensor:
    return torch.remainder(difference + 180.0, 360.0) - 180.0


@reference
def rotation_from_theta(theta: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) -> (N,) degrees: the rotation closest to theta's 2x2 part, in (-180, 180].

    Example:
        >>> rotation_from_theta(torch.tensor([[[0.0, -2.0, 0.3], [2.0, 0.0, 0.1]]]))
        tensor([90.])
    """
    return _rotation_deg(theta)


@reference
def angle_difference_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b in degrees, wrapped into [-180, 180); any (broadcastable) shapes.

    Example:
        >>> angle_difference_deg(torch.tensor([170.0, -30.0]), torch.tensor([-170.0, 20.0]))
        tensor([-20., -50.])
    """
    return _wrap_deg(a - b)


def ideal_theta(params: dict) -> torch.Tensor | None:
    """The theta that undoes each sample's distortion, from a ``DistortedDigits``' ``params``.

    Args:
        params: with ``"theta"`` (N, 2, 3) (R, RTS, TC, none; (N, C, 2, 3) for addition, one per
            channel) or ``"homography"`` (N, 3, 3) (P), the transform that placed each clean digit
            (output canvas -> digit).

    Returns:
        (N, 2, 3) (or (N, C, 2, 3)) float64: the inverse of that transform (its affine part for P),
        or None (E).
    """
    if "theta" in params:
        placed = params["theta"].double()
        linear, shift = placed[..., :2], placed[..., 2:]
        inverse = torch.linalg.inv(linear)
        return torch.cat([inverse, -inverse @ shift], dim=-1)
    if "homography" in params:
        return affine_part(torch.linalg.inv(params["homography"].double()))
    return None


def _slope(learned: torch.Tensor, ideal: torch.Tensor) -> float:
    x, y = ideal - ideal.mean(), learned - learned.mean()
    return float((x * y).sum() / (x * x).sum())


def _corr(learned: torch.Tensor, ideal: torch.Tensor) -> float:
    if learned.std() < _VARIES:
        return 0.0
    return float(torch.corrcoef(torch.stack([learned, ideal]))[0, 1])


def _scale(theta: torch.Tensor) -> torch.Tensor:
    return torch.linalg.det(theta[:, :, :2]).abs().sqrt()


def undo_stats_from_theta(learned: torch.Tensor, ideal: torch.Tensor) -> dict:
    """Compare learned and ideal thetas sample by sample (see the module docstring).

    Args:
        learned: (N, 2, 3) theta, or (N, 3, 3) homography, predicted for each test sample.
        ideal: (N, 2, 3) theta that undoes each sample's distortion (:func:`ideal_theta`).

    Returns:
        dict with the :data:`UNDO_KEYS`; a statistic is None where ``ideal`` does not vary it.

    Example:
        >>> from stnlib.data import placement_theta
        >>> placed = placement_theta(torch.tensor([-60.0, 0.0, 60.0]), torch.ones(3), torch.zeros(3, 2), canvas=28)
        >>> ideal = ideal_theta({"theta": placed})
        >>> undo_stats_from_theta(ideal, ideal)["rotation_slope"]
        1.0
    """
    learned, ideal = affine_part(learned).double(), affine_part(ideal).double()
    if learned.shape != ideal.shape:
        raise ValueError(
            f"learned and ideal must have the same shape; got {tuple(learned.shape)} and {tuple(ideal.shape)}"
        )
    a_learned, a_ideal = _rotation_deg(learned), _rotation_deg(ideal)
    rotated = bool(a_ideal.std() > _VARIES) if len(a_ideal) > 1 else False
    residual = None
    if rotated:
        offset = _wrap_deg(a_learned - a_ideal)
        radians = torch.deg2rad(offset)
        mean_offset = torch.rad2deg(torch.atan2(radians.sin().mean(), radians.cos().mean()))
        residual = float(_wrap_deg(offset - mean_offset).abs().median())
    s_learned, s_ideal = _scale(learned), _scale(ideal)
    shift_learned, shift_ideal = learned[:, :, 2].flatten(), ideal[:, :, 2].flatten()
    scaled = len(s_ideal) > 1 and bool(s_ideal.std() > _VARIES)
    shifted = len(s_ideal) > 1 and bool(shift_ideal.std() > _VARIES)
    return {
        "rotation_slope": _slope(a_learned, a_ideal) if rotated else None,
        "rotation_corr": _corr(a_learned, a_ideal) if rotated else None,
        "angle_residual_median": residual,
        "scale_slope": _slope(s_learned, s_ideal) if scaled else None,
        "shift_slope": _slope(shift_learned, shift_ideal) if shifted else None,
        "scale_mean": float(s_learned.mean()),
        "scale_ideal_mean": float(s_ideal.mean()),
        "n": len(learned),
    }


def attention_stats(learned: torch.Tensor, ideal: torch.Tensor) -> dict:
    """Which channel each transformer follows, and how well: for several transformers and several digits.

    Args:
        learned: (N, T, 2, 3) the affine part of each of T transformers' thetas ((N, 2, 3): T = 1).
        ideal: (N, C, 2, 3) the theta that undoes channel c's distortion (:func:`ideal_theta`).

    Returns:
        ``{"transformers": [...]}``, one dict per transformer: ``channel`` (0-based, the channel
        whose shift it undoes best: the digit it attends to), the :data:`UNDO_KEYS` against that
        channel, and ``shift_slopes``, its shift slope against every channel.

    Example:
        >>> from stnlib.data import placement_theta
        >>> def placed(dx):
        ...     return placement_theta(torch.zeros(4), torch.ones(4), torch.stack([dx, -dx], 1), canvas=42)
        >>> ideal = ideal_theta({"theta": torch.stack([placed(torch.arange(4.0)), placed(-torch.arange(4.0) ** 2)], 1)})
        >>> [t["channel"] for t in attention_stats(ideal.flip(1), ideal)["transformers"]]  # swapped: 0 follows 1
        [1, 0]
    """
    learned = learned.double()
    if learned.dim() == 3:
        learned = learned[:, None]
    check_shape(learned, "N,T,2,3", name="learned")
    check_shape(ideal, "N,C,2,3", name="ideal")
    transformers = []
    for t in range(learned.shape[1]):
        per_channel = [undo_stats_from_theta(learned[:, t], ideal[:, c]) for c in range(ideal.shape[1])]
        slopes = [stats["shift_slope"] for stats in per_channel]
        best = max(range(len(slopes)), key=lambda c: -float("inf") if slopes[c] is None else slopes[c])
        transformers.append({"channel": best, **per_channel[best], "shift_slopes": slopes})
    return {"transformers": transformers}


@torch.no_grad()
def undo_stats(model, test_set, *, device="cpu", batch_size: int = 1000) -> dict | None:
    """:func:`undo_stats_from_theta` (or :func:`attention_stats`) for ``model`` on a distorted test set.

    Args:
        model: has ``affine_theta(x)`` (or ``theta(x)``) mapping (N, C, S, S) images in [0, 1] on
            ``device`` to (N, 2, 3) theta, (N, 3, 3) homography or (N, T, 2, 3) for T transformers
            (an ``stnlib.models`` transformer model).
        test_set: a ``stnlib.data.DistortedDigits`` (uint8 images and ``params``).
        device: where ``model`` is.
        batch_size: samples per forward pass.

    Returns:
        the statistics (for addition, or several transformers: :func:`attention_stats`), or None
        when the model has no transformer or the distortion has no affine ground truth (E, or
        plain digits).
    """
    if not (hasattr(model, "theta") and getattr(model, "use_stn", True)):
        return None
    params = getattr(test_set, "params", None) or {}
    ideal = ideal_theta(params)
    if ideal is None or getattr(test_set, "distortion", None) == "none":
        return None
    was_training = model.training
    model.eval()
    predict = model.affine_theta if hasattr(model, "affine_theta") else model.theta
    learned = torch.cat([predict(to_float(x).to(device)).cpu() for x in test_set.images.split(batch_size)])
    model.train(was_training)
    if ideal.dim() == 4 or learned.dim() == 4:  # several digits or several transformers
        return attention_stats(learned, ideal if ideal.dim() == 4 else ideal[:, None])
    return undo_stats_from_theta(learned, ideal)


def format_undo(stats: dict | None) -> str:
    """The one-line summary the training CLI prints.

    Example:
        >>> format_undo({"rotation_slope": 0.93, "scale_slope": None, "shift_slope": None,
        ...              "angle_residual_median": 6.04})
        'undo: rotation slope 0.93, scale slope n/a, shift slope n/a, median angle residual 6.0 deg'
        >>> format_undo({"transformers": [{"channel": 1, "shift_slope": 0.9, "scale_slope": 0.8, "rotation_slope": None}]})
        'undo: transformer 0 follows channel 1 (shift slope 0.90, scale slope 0.80, rotation slope n/a)'
        >>> format_undo({"transformers": [{"channel": 0, "shift_slope": 0.02, "scale_slope": 0.0, "rotation_slope": None}]})
        'undo: transformer 0 follows no channel; closest: channel 0 (shift slope 0.02, scale slope 0.00, rotation slope n/a)'

    Transformers and channels are counted from 0, as the tensors index them (``model.transformers[t]``, the
    input's channel ``x[:, c]``, :func:`attention_stats`' ``"channel"``), in the course's text as well.
    """
    if stats is None:
        return "undo: n/a (no transformer, or no affine ground truth for this distortion)"
    if "transformers" in stats:  # see attention_stats
        parts = []
        for t, one in enumerate(stats["transformers"]):
            slopes = ", ".join(
                f"{name} slope {'n/a' if one.get(key) is None else format(one[key], '.2f')}"
                for name, key in (("shift", "shift_slope"), ("scale", "scale_slope"), ("rotation", "rotation_slope"))
            )
            follows = one.get("shift_slope") is not None and one["shift_slope"] >= FOLLOWS
            what = "follows" if follows else "follows no channel; closest:"
            parts.append(f"transformer {t} {what} channel {one['channel']} ({slopes})")
        return "undo: " + "; ".join(parts)

    def number(key, digits=2):
        value = stats.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    residual = number("angle_residual_median", 1)
    return (
        f"undo: rotation slope {number('rotation_slope')}, scale slope {number('scale_slope')}, "
        f"shift slope {number('shift_slope')}, median angle residual {residual}{'' if residual == 'n/a' else ' deg'}"
    )
