"""Training, evaluation, checkpoints and the command line of Part III.

Introduced in notebook 05 (training an STN); notebook 06 and the benchmarks reuse it.

A :class:`Recipe` holds every choice that shapes a run: the model (``stn``, ``cnn``, ``tutorial``,
``tutorial-cnn``), the optimiser, the learning-rate schedule, the localisation network's learning
rate as a multiple of the base rate, batch size, epochs, where normalisation sits and the padding
of the sampler. ``RECIPES`` names four of them:

- ``"default"``: stnlib's recipe. An STN with the paper's small localisation network on a 2x
  downsampled input, output 28x28, normalisation after the transformer; Adam (peak lr 3e-3) with a
  one-cycle schedule, the localisation network at 0.3 of the rate, batch 64, 8 epochs, and a
  fresh draw of the training distortions every epoch (the same digits in new poses). Each choice
  is backed by an ablation on the offline 4,000-digit RTS set, two seeds each
  (``benchmarks/results/ablations.json``, shown in notebook 06); batch 32 or 16 epochs lower the
  error a little more at 20 % or 100 % more time.
- ``"tutorial"``: the PyTorch tutorial as published: its network (:class:`stnlib.models.TutorialNet`),
  normalisation before the transformer with zero padding, SGD at lr 0.01 without momentum, one rate
  for every layer, batch 64, 20 epochs, one fixed draw of the distortions.
- ``"plain-adam"``: the tutorial with only its optimiser changed: Adam with a one-cycle schedule
  (peak 3e-3), batch 128, the localisation network at a tenth of the rate, 5 epochs (one fixed draw). The second row
  of ``benchmarks/training_recipe.py``, which compares the three side by side (results in
  ``benchmarks/results/training_recipe.json``; the ablations of the default recipe, one choice at a
  time, in ``benchmarks/results/ablations.json``; notebook 06 shows both).
- ``"upright"``: the default recipe changed so that the transformer learns to turn rotated digits
  upright (on R the default learns scale and shift but leaves rotation to the classifier): a
  rotation curriculum (the training rotations widen from a small range to the full one over the
  first half of the epochs, so the classifier first learns upright digits and the transformer then
  has a reason to turn the others towards them), the similarity transform (one number for the
  angle), a wider localisation network (64 filters, 64 hidden) at the classifier's learning rate,
  36 epochs, and label smoothing 0.1. Without the smoothing the classifier becomes certain of the
  training digits (a training loss near 0 however a digit is turned), so the gradient that reaches
  the transformer fades before it has finished turning the most rotated digits; with it the loss
  keeps telling the transformer which pose the classifier reads best, and every seed reaches the
  course's bar (rotation slope >= 0.8, median angle residual <= 15 deg; without it seeds 3 and 4
  fall short). Each change is measured, one at a time and combined, on R in
  ``benchmarks/rotation.py``, the recipe itself on seeds 0-9 with one and with two threads
  (results in ``benchmarks/results/rotation.json``; notebooks 05 and 06 show them).

Runs are seeded and reproducible on the CPU: the same seed and the same number of threads give
the same metrics (apart from the timings; another thread count changes the rounding of the
convolutions, and after a few hundred steps the test error can differ by a few tenths of a point). Progress bars come from ``tqdm.auto`` (widgets in JupyterLab, text in a terminal)
and are off when ``STN_FAST=1`` or ``CI`` is set.

Command line (prints the final test error, saves a checkpoint and a metrics JSON)::

    python -m stnlib.train --dataset mnist --distortion rts --model stn --epochs 8
    python -m stnlib.train --recipe tutorial --distortion rts
    python -m stnlib.train --recipe upright --distortion r --offline   # prints the undo line: rotation slope about 0.85
    python -m stnlib.train --epochs 1 --limit 256          # a smoke test in seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy
import torch
import torch.nn.functional as F
from torch import nn

from . import config
from .config import artifacts_dir
from .data import CANVAS_SIZE, DATASETS, DISTORTIONS, load_datasets, to_float
from .models import CLASSIFIERS, MODELS, PADDING_MODES, PLACEMENTS, SAMPLERS, TRANSFORMS, build_model, count_parameters
from .undo import format_undo, undo_stats
from .validation import check_choice
from .warps import affine_part

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "LOC_INITS",
    "Recipe",
    "RECIPES",
    "get_recipe",
    "resolve_device",
    "model_for",
    "make_optimizer",
    "make_scheduler",
    "theta_stats",
    "redraw_seed",
    "rotation_range",
    "evaluate",
    "train",
    "metrics_path",
    "cli_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "fit_or_load",
    "run_key",
    "cached_run",
    "main",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle", "step")
TIME_KEYS = (
    "wall_time_s",
    "cpu_time_s",
    "seconds",
)  # the only entries of the metrics that differ between identical runs
LOC_INITS = ("identity", "random")


@dataclasses.dataclass
class Recipe:
    """Every choice of a training run (see the module docstring for the named ones).

    Attributes:
        model: one of ``stnlib.models.MODELS``.
        transform: one of ``stnlib.models.TRANSFORMS`` (``"affine"``, ``"similarity"``,
            ``"attention"``, ``"projective"``, ``"tps"``), for every model with a transformer.
        out_size: side of the transformer's square output (``"stn"`` and ``"cnn"`` models).
        normalise: ``"after"`` or ``"before"`` the transformer.
        padding_mode: the sampler's padding: ``"zeros"``, ``"border"`` or ``"reflection"``.
        sampler: ``"torch"`` or ``"stnlib"`` (the hand-built one; slower, same results).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: base learning rate (the peak of the one-cycle schedule).
        momentum: SGD momentum.
        weight_decay: weight decay of every parameter.
        schedule: ``"constant"``, ``"onecycle"`` (warm up for 30 % of the steps, then anneal),
            or ``"step"`` (divide by 10 after a third and after two thirds of the steps, as the paper).
        loc_lr_mult: the localisation network's learning rate as a multiple of ``lr``.
        batch_size: training batch size.
        epochs: passes over the training set.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        loc_init: ``"identity"`` (the last ``fc_loc`` layer starts at the identity transform: zero
            weight, identity bias) or ``"random"`` (PyTorch's default initialisation of that layer,
            an ablation: the transformer starts from a random, mostly degenerate theta).
        loc_downsample: the localisation network's average pooling of its input (``"stn"`` and
            ``"cnn"`` models; 1 = full resolution).
        redraw: draw fresh distortions of the training digits every epoch after the first
            (:meth:`stnlib.data.DistortedDigits.redraw`, seeded by the data seed, the run's seed
            and the epoch), so the network sees each digit in many poses; the test set never
            changes. Needs ``DistortedDigits`` training data; False trains on one fixed draw.
        classifier: the network behind the transformer, one of ``stnlib.models.CLASSIFIERS``
            (``"cnn"``, ``"tiny-cnn"``, ``"fcn"``; with ``model="cnn"`` the baseline of that kind).
        loc_channels, loc_hidden: filters of the localisation network's two conv layers and the
            width of its hidden fully connected layer.
        loc_coords: give the localisation network the pixel coordinates as two more channels.
        iterations: how often the localisation network looks, refining its theta each time
            (the inverse-compositional STN; 1 = the plain STN).
        curriculum_epochs: widen the training rotations linearly over this many epochs: epoch e
            draws angles from ``min(1, e / curriculum_epochs)`` of the full range (R: ±90°,
            RTS: ±45°), then the full range. 0: no curriculum. The test set is never changed.
        tps_points: control points per side of a ``"tps"`` transform (K = tps_points ** 2).
        ema_decay: 0 (off) or the decay of an exponential moving average of the weights, updated
            after every step (``avg = decay * avg + (1 - decay) * weights``); the model is evaluated
            with the average after every epoch and ends with it. 0.998 averages over about the last
            500 steps (8 epochs of 4,000 digits at batch 64).
        label_smoothing: of the training loss (``F.cross_entropy(..., label_smoothing=...)``); 0: none.
    """

    model: str = "stn"
    transform: str = "affine"
    out_size: int = 28
    normalise: str = "after"
    padding_mode: str = "zeros"
    sampler: str = "torch"
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    loc_lr_mult: float = 0.3
    batch_size: int = 64
    epochs: int = 8
    grad_clip: float | None = None
    loc_init: str = "identity"
    loc_downsample: int = 2
    redraw: bool = True
    classifier: str = "cnn"
    loc_channels: tuple = (20, 20)
    loc_hidden: int = 32
    loc_coords: bool = False
    iterations: int = 1
    curriculum_epochs: int = 0
    tps_points: int = 4
    ema_decay: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        check_choice(self.model, MODELS, "model")
        check_choice(self.transform, TRANSFORMS, "transform")
        check_choice(self.normalise, PLACEMENTS, "normalise")
        check_choice(self.padding_mode, PADDING_MODES, "padding_mode")
        check_choice(self.sampler, SAMPLERS, "sampler")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.loc_init, LOC_INITS, "loc_init")
        check_choice(self.classifier, CLASSIFIERS, "classifier")
        for name in (
            "lr",
            "loc_lr_mult",
            "batch_size",
            "epochs",
            "out_size",
            "loc_downsample",
            "loc_hidden",
            "iterations",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not (isinstance(self.tps_points, int) and self.tps_points >= 2):
            raise ValueError(f"tps_points must be an int of at least 2; got {self.tps_points!r}")
        if self.curriculum_epochs < 0:
            raise ValueError(f"curriculum_epochs must be 0 or positive; got {self.curriculum_epochs!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1); got {self.ema_decay!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {self.label_smoothing!r}")
        self.loc_channels = tuple(int(c) for c in self.loc_channels)
        if len(self.loc_channels) != 2 or min(self.loc_channels) < 1:
            raise ValueError(f"loc_channels must be two positive ints; got {self.loc_channels!r}")


RECIPES = {
    "default": Recipe(),
    "tutorial": Recipe(
        model="tutorial",
        normalise="before",
        padding_mode="zeros",
        optimizer="sgd",
        lr=0.01,
        momentum=0.0,
        schedule="constant",
        loc_lr_mult=1.0,
        batch_size=64,
        epochs=20,
        redraw=False,
    ),
    "plain-adam": Recipe(
        model="tutorial",
        normalise="before",
        padding_mode="zeros",
        optimizer="adam",
        lr=3e-3,
        schedule="onecycle",
        loc_lr_mult=0.1,
        batch_size=128,
        epochs=5,
        redraw=False,
    ),
    "upright": Recipe(
        transform="similarity",
        curriculum_epochs=18,
        epochs=36,
        loc_lr_mult=1.0,
        loc_channels=(64, 64),
        loc_hidden=64,
        label_smoothing=0.1,
    ),
}


def get_recipe(name: str = "default", **overrides) -> Recipe:
    """A copy of ``RECIPES[name]`` with some fields changed, e.g. ``get_recipe(epochs=2)``.

    ``None`` values in ``overrides`` are ignored (so command-line defaults can pass through).
    """
    check_choice(name, tuple(RECIPES), "recipe")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"overrides must be fields of Recipe ({', '.join(sorted(fields))}); got {', '.join(unknown)}")
    return dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else the CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_for(recipe: Recipe, data) -> nn.Module:
    """Build the recipe's model for images like ``data``'s.

    Uses ``data.image_size``, ``data.dataset``, and ``data.channels`` and ``data.num_classes``
    (1 and 10 when ``data`` has none; 2 and 19 for MNIST addition).

    With ``recipe.loc_init == "random"`` the last layer of the localisation network is
    re-initialised with PyTorch's default instead of the identity (the ablation of notebook 06).
    """
    model = build_model(
        recipe.model,
        in_size=data.image_size,
        dataset=getattr(data, "dataset", "mnist"),
        transform=recipe.transform,
        out_size=(recipe.out_size, recipe.out_size),
        normalise=recipe.normalise,
        sampler=recipe.sampler,
        padding_mode=recipe.padding_mode,
        loc_downsample=recipe.loc_downsample,
        loc_channels=recipe.loc_channels,
        loc_hidden=recipe.loc_hidden,
        loc_coords=recipe.loc_coords,
        classifier=recipe.classifier,
        iterations=recipe.iterations,
        in_channels=getattr(data, "channels", 1),
        num_classes=getattr(data, "num_classes", 10),
        tps_points=recipe.tps_points,
    )
    if recipe.loc_init == "random" and hasattr(model, "fc_loc"):
        model.fc_loc[-1].reset_parameters()
    return model


# --------------------------------------------------------------------------- optimisation
def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser, with the localisation network in its own parameter group.

    Group 0 holds every other parameter at ``recipe.lr``; group 1 (if the model has a
    ``localization_parameters()`` method) the localisation network at ``recipe.lr * recipe.loc_lr_mult``.
    """
    loc = list(model.localization_parameters()) if hasattr(model, "localization_parameters") else []
    loc_ids = {id(p) for p in loc}
    rest = [p for p in model.parameters() if id(p) not in loc_ids]
    groups = [{"params": rest, "lr": recipe.lr}]
    if loc:
        groups.append({"params": loc, "lr": recipe.lr * recipe.loc_lr_mult})
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    """The recipe's learning-rate schedule, stepped once per batch."""
    if recipe.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=max(total_steps, 2), pct_start=0.3
        )
    if recipe.schedule == "step":
        milestones = [max(1, total_steps // 3), max(2, 2 * total_steps // 3)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


# --------------------------------------------------------------------------- evaluation
def _tensors(data):
    """(images, labels) from a ``DistortedDigits`` or an ``(images, labels)`` pair."""
    if isinstance(data, (tuple, list)):
        return data[0], data[1]
    return data.images, data.labels


def theta_stats(theta: torch.Tensor) -> dict:
    """Summary of a batch of transforms, to watch the localisation network.

    A localisation network that runs away shows here first: the determinant drifts towards 0 (a
    collapse onto a point) or far above 1 (a zoom-out), or the shift grows past 1 (reads off the image).

    Args:
        theta: (N, 2, 3) theta or (N, 3, 3) homography (its affine part, divided by h33, is used);
            several transformers' (..., 2, 3) thetas are pooled.

    Returns:
        dict of floats: ``det_mean``, ``det_min``, ``det_max`` of the 2x2 part (the area the
        output covers, relative to the input; 1 at the identity; near 0 is a collapse) and
        ``shift_mean``, the mean length of the translation (normalised units).
    """
    theta = affine_part(theta.detach().double()).reshape(-1, 2, 3)
    det = torch.linalg.det(theta[:, :, :2])
    return {
        "det_mean": det.mean().item(),
        "det_min": det.min().item(),
        "det_max": det.max().item(),
        "shift_mean": theta[:, :, 2].norm(dim=1).mean().item(),
    }


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 1000, device="auto") -> dict:
    """Loss, error and theta statistics of ``model`` on ``data``, in eval mode.

    Args:
        model: returns logits (or log-probabilities) for (N, C, H, W) images in [0, 1].
        data: a ``DistortedDigits`` or an ``(images, labels)`` pair (uint8 or float images).
        batch_size: evaluation batch size.
        device: where to run (``"auto"``: CUDA when present).

    Returns:
        dict: ``loss`` (mean cross-entropy), ``error`` (fraction misclassified), ``errors``
        (count), ``n``, and ``theta`` (:func:`theta_stats` of the affine part, ``affine_theta``,
        where the model has one) when the model has a transformer, else None.
    """
    device = resolve_device(device)
    images, labels = _tensors(data)
    was_training = model.training
    model.eval()
    total_loss, errors, thetas = 0.0, 0, []
    with_theta = hasattr(model, "theta") and getattr(model, "use_stn", True)
    predict_theta = getattr(model, "affine_theta", getattr(model, "theta", None))
    for start in range(0, len(labels), batch_size):
        x = to_float(images[start : start + batch_size]).to(device)
        y = labels[start : start + batch_size].to(device)
        out = model(x)
        total_loss += F.cross_entropy(out, y, reduction="sum").item()
        errors += (out.argmax(1) != y).sum().item()
        if with_theta:
            thetas.append(predict_theta(x).cpu())
    model.train(was_training)
    n = len(labels)
    return {
        "loss": total_loss / max(n, 1),
        "error": errors / max(n, 1),
        "errors": errors,
        "n": n,
        "theta": theta_stats(torch.cat(thetas)) if thetas else None,
    }


# --------------------------------------------------------------------------- training
def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return not (config.fast_mode() or os.environ.get("CI"))


def redraw_seed(data_seed: int, run_seed: int, epoch: int) -> int:
    """Seed of the training draw of ``epoch`` (2, 3, ...) when ``Recipe.redraw`` is on.

    A 64-bit seed mixed from all three by ``numpy.random.SeedSequence``, so every (data seed, run seed,
    epoch) draws its own distortions.

    Example:
        >>> redraw_seed(0, 0, 2) == redraw_seed(0, 0, 2) != redraw_seed(0, 1, 2)
        True
    """
    state = numpy.random.SeedSequence([int(data_seed), int(run_seed), int(epoch), 0x57A7]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def rotation_range(recipe: Recipe, epoch: int) -> float:
    """Fraction of the full rotation range that ``epoch`` (1, 2, ...) trains on: the curriculum.

    Example:
        >>> recipe = Recipe(curriculum_epochs=4)
        >>> [rotation_range(recipe, epoch) for epoch in (1, 2, 4, 5)]
        [0.25, 0.5, 1.0, 1.0]
    """
    if recipe.curriculum_epochs <= 0:
        return 1.0
    return min(1.0, epoch / recipe.curriculum_epochs)


class _WeightAverage:
    """An exponential moving average of a model's floating-point parameters and buffers (``Recipe.ema_decay``)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.tensors = [t.detach().clone() for t in self._tensors(model)]

    @staticmethod
    def _tensors(model):
        return [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.tensors, self._tensors(model)):
            mine.lerp_(theirs.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self, model: nn.Module) -> None:
        """Exchange the model's weights with the averaged ones (call again to swap back)."""
        for mine, theirs in zip(self.tensors, self._tensors(model)):
            held = theirs.detach().clone()
            theirs.copy_(mine)
            mine.copy_(held)


def _data_info(train_data, test_data) -> dict:
    info = {key: getattr(train_data, key, None) for key in ("dataset", "distortion", "source", "seed")}
    info.update(n_train=len(_tensors(train_data)[1]), n_test=len(_tensors(test_data)[1]))
    return info


def train(
    model: nn.Module,
    train_data,
    test_data,
    recipe: Recipe | None = None,
    *,
    seed: int = 0,
    device="auto",
    progress: bool | None = None,
    verbose: bool = True,
) -> dict:
    """Train ``model`` with ``recipe`` and evaluate it on ``test_data`` after every epoch.

    Seeds ``torch`` (dropout) and the shuffling with ``seed``; the model's initial weights are
    the caller's (seed before building it). Uses cross-entropy on the model's output.

    Args:
        model: an ``stnlib.models`` model (any module mapping (N, 1, H, W) in [0, 1] to class scores).
        train_data, test_data: ``DistortedDigits`` or ``(images, labels)`` pairs.
        recipe: a :class:`Recipe` (default: ``RECIPES["default"]``); its model fields are not used here.
        seed: seed of the run.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ...
        progress: show a ``tqdm.auto`` progress bar; default: yes unless ``STN_FAST`` or ``CI`` is set.
        verbose: print one line per epoch.

    Returns:
        metrics dict: ``recipe``, ``seed``, ``device``, ``data``, ``parameters``, ``redrawn`` (whether
        the training draw changed every epoch), ``history`` (one dict
        per epoch: ``train_loss``, ``train_error``, ``test_loss``, ``test_error``, ``theta``, ``lr``,
        ``rotation_range``, ``seconds``), ``final_test_error``, ``final_test_loss``, ``undo`` (how
        far the final theta undoes the test distortions, :func:`stnlib.undo.undo_stats`; None
        without a transformer or an affine ground truth), ``wall_time_s`` and ``cpu_time_s``
        (the CPU time of this process, all threads, which a busy machine disturbs less).

    Raises:
        RuntimeError: the loss became NaN or infinite (the localisation network diverged).
    """
    from tqdm.auto import tqdm

    recipe = recipe or RECIPES["default"]
    device = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = _tensors(train_data)
    images, labels = images.to(device), labels.to(device)
    n = len(labels)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    model.to(device).train()
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe, recipe.epochs * steps_per_epoch)
    history, start, cpu_start = [], time.perf_counter(), time.process_time()
    bar = tqdm(
        total=recipe.epochs * steps_per_epoch, desc="training", unit="batch", disable=not _progress_enabled(progress)
    )
    say = tqdm.write if not bar.disable else print
    average = _WeightAverage(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    redraw = recipe.redraw and hasattr(train_data, "redraw")
    curriculum = recipe.curriculum_epochs > 0 and hasattr(train_data, "redraw")
    for epoch in range(1, recipe.epochs + 1):
        epoch_start, total_loss, errors = time.perf_counter(), 0.0, 0
        fraction = rotation_range(recipe, epoch) if curriculum else 1.0
        if (redraw and epoch > 1) or fraction < 1.0:  # fresh poses of the same digits (MNIST addition: new pairs)
            draw = train_data.redraw(redraw_seed(train_data.seed, seed, epoch), rotation_range=fraction)
            images, labels = draw.images.to(device), draw.labels.to(device)
        elif curriculum and not redraw and epoch == recipe.curriculum_epochs:  # the curriculum is over
            images, labels = (t.to(device) for t in _tensors(train_data))
        model.train()
        for index in torch.randperm(n, generator=generator).split(recipe.batch_size):
            index = index.to(device)
            x, y = to_float(images[index]), labels[index]
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=recipe.label_smoothing)
            if not torch.isfinite(loss):
                bar.close()
                raise RuntimeError(
                    f"training diverged: the loss is {loss.item()} in epoch {epoch}; "
                    "lower lr or loc_lr_mult, or set grad_clip (e.g. 1.0)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(model)
            total_loss += loss.item() * len(y)
            errors += (out.argmax(1) != y).sum().item()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        if average is not None:
            average.swap(model)  # evaluate (and, after the last epoch, keep) the averaged weights
        test = evaluate(model, test_data, device=device)
        if average is not None and epoch < recipe.epochs:
            average.swap(model)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total_loss / n,
                "train_error": errors / n,
                "test_loss": test["loss"],
                "test_error": test["error"],
                "theta": test["theta"],
                "lr": optimizer.param_groups[0]["lr"],
                "rotation_range": fraction,
                "seconds": time.perf_counter() - epoch_start,
            }
        )
        if verbose:
            say(
                f"epoch {epoch}/{recipe.epochs}: train loss {total_loss / n:.4f}, "
                f"test error {100 * test['error']:.2f}% ({test['errors']}/{test['n']}), {history[-1]['seconds']:.1f} s"
            )
    bar.close()
    model.eval()
    undo = undo_stats(model, test_data, device=device) if hasattr(test_data, "params") else None
    return {
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "device": str(device),
        "data": _data_info(train_data, test_data),
        "parameters": count_parameters(model),
        "redrawn": redraw,
        "history": history,
        "final_test_error": history[-1]["test_error"] if history else None,
        "final_test_loss": history[-1]["test_loss"] if history else None,
        "undo": undo,
        "wall_time_s": time.perf_counter() - start,
        "cpu_time_s": time.process_time() - cpu_start,
    }


# --------------------------------------------------------------------------- checkpoints
def metrics_path(ckpt_path) -> Path:
    """Where the metrics JSON of a checkpoint lives: the same name with ``.json``."""
    return Path(ckpt_path).with_suffix(".json")


def cli_checkpoint(
    dataset: str = "mnist", distortion: str = "rts", model: str = "stn", recipe: str = "default", seed: int = 0
) -> Path:
    """Where ``python -m stnlib.train`` saves a run when ``--out`` is not given.

    ``artifacts/runs/<dataset>-<distortion>-<model>-<recipe>-seed<seed>.pt`` under the repository
    root (:func:`stnlib.config.artifacts_dir`), so a notebook can load what the command line trained.

    Example:
        >>> cli_checkpoint("mnist", "r", "stn", "default", 0).name
        'mnist-r-stn-default-seed0.pt'
    """
    return artifacts_dir("runs") / f"{dataset}-{distortion}-{model}-{recipe}-seed{seed}.pt"


def save_checkpoint(ckpt_path, model: nn.Module, metrics: dict) -> Path:
    """Save ``model``'s weights and ``metrics`` to ``ckpt_path``, and the metrics as JSON beside it.

    Returns:
        the path of the metrics JSON.
    """
    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"model_state": state, "metrics": metrics}, ckpt_path)
    json_path = metrics_path(ckpt_path)
    json_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return json_path


def load_checkpoint(ckpt_path, model: nn.Module) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (eval mode); return its metrics."""
    checkpoint = torch.load(Path(ckpt_path), map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    return checkpoint["metrics"]


def fit_or_load(
    model: nn.Module,
    ckpt_path,
    train_data=None,
    test_data=None,
    recipe: Recipe | None = None,
    *,
    seed: int = 0,
    device="auto",
    retrain: bool = False,
    **train_kwargs,
) -> dict:
    """Load ``ckpt_path`` into ``model`` if it exists, else train the model and save it there.

    Args:
        model: the model (built as the checkpoint's was).
        ckpt_path: the checkpoint file (``.pt``); the metrics go to the same name with ``.json``.
        train_data, test_data, recipe, seed, device, train_kwargs: passed to :func:`train`.
        retrain: train (and overwrite) even if the checkpoint exists.

    Returns:
        the metrics (stored with the checkpoint, or of the new run). The model is in eval mode.
        Loading prints one line that names the checkpoint (unless ``verbose=False`` is given), so that
        a run that took no time is not mistaken for a fresh one.
    """
    ckpt_path = Path(ckpt_path)
    if ckpt_path.exists() and not retrain:
        metrics = load_checkpoint(ckpt_path, model)
        if train_kwargs.get("verbose", True):
            print(f"loaded from {ckpt_path} (trained earlier; delete the file or pass retrain=True to train again)")
        return metrics
    if train_data is None or test_data is None:
        raise ValueError(f"train_data and test_data must be given to train: there is no checkpoint at {ckpt_path}")
    metrics = train(model, train_data, test_data, recipe, seed=seed, device=device, **train_kwargs)
    save_checkpoint(ckpt_path, model, metrics)
    return metrics


def run_key(recipe: Recipe, train_set, test_set, seed: int = 0) -> str:
    """A short hash of everything that shapes a run: the recipe, the data and the seed.

    The data is told apart by its distortion, seed, sizes and source, and by the sum of its pixels
    (which changes with any edit of the images).
    """
    what = [
        dataclasses.asdict(recipe),
        train_set.distortion,
        train_set.seed,
        len(train_set),
        len(test_set),
        train_set.source,
        int(train_set.images.float().sum()),
    ]
    if seed:
        what.append(seed)
    return hashlib.sha1(json.dumps(what).encode()).hexdigest()[:10]


def cached_run(
    name: str,
    train_set,
    test_set,
    recipe: Recipe | None = None,
    *,
    folder,
    keep: bool = True,
    seed: int = 0,
    device="auto",
    verbose: bool = True,
):
    """Train the recipe's model on ``train_set``, or load it if this exact run was trained before.

    The notebooks' way to train: the checkpoint is ``folder / f"{name}-{run_key(...)}.pt"``, so
    changing the recipe, the data or the seed trains afresh instead of loading a stale model.
    The model's initial weights are seeded with ``seed``.

    Args:
        name: a readable name for the run (the start of the file name).
        train_set, test_set: ``stnlib.data.DistortedDigits``.
        recipe: a :class:`Recipe` (default ``RECIPES["default"]``).
        folder: where checkpoints live (e.g. ``stnlib.config.artifacts_dir("runs", "nb06")``).
        keep: False trains afresh and saves nothing (the notebooks' fast mode).
        seed, device: of the run (:func:`train`).
        verbose: print one line: the test error, the parameter count and the training time.

    Returns:
        ``(model, metrics)``, the model in eval mode on the CPU.
    """
    recipe = recipe or RECIPES["default"]
    torch.manual_seed(seed)
    model = model_for(recipe, train_set)
    if keep:
        path = Path(folder) / f"{name}-{run_key(recipe, train_set, test_set, seed)}.pt"
        metrics = fit_or_load(model, path, train_set, test_set, recipe, seed=seed, device=device, verbose=False)
    else:
        metrics = train(model, train_set, test_set, recipe, seed=seed, device=device, verbose=False)
    if verbose:
        print(
            f"{name:<14} test error {100 * metrics['final_test_error']:5.2f}%  "
            f"({count_parameters(model):,} parameters, trained in {metrics['wall_time_s']:.0f} s)"
        )
    return model.cpu().eval(), metrics


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stnlib.train",
        description="Train an STN (or a baseline) on (distorted) MNIST and print the final test error.",
    )
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--distortion", choices=DISTORTIONS, default="rts")
    parser.add_argument(
        "--recipe", choices=tuple(RECIPES), default="default", help="named recipe the options below change"
    )
    parser.add_argument("--model", choices=MODELS)
    parser.add_argument("--transform", choices=TRANSFORMS)
    parser.add_argument("--out-size", type=int, help="side of the transformer's output")
    parser.add_argument(
        "--normalise",
        "--normalize",
        choices=PLACEMENTS,
        help="where the model normalises: after (default) or before the transformer",
    )
    parser.add_argument("--padding-mode", choices=PADDING_MODES)
    parser.add_argument("--sampler", choices=SAMPLERS)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--loc-lr-mult", type=float, help="localisation network's learning rate / lr")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--grad-clip", type=float)
    parser.add_argument("--loc-init", choices=LOC_INITS, help="identity (default) or random (an ablation)")
    parser.add_argument("--loc-downsample", type=int, help="localisation network's input pooling (1: none)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, help="the network behind the transformer")
    parser.add_argument(
        "--loc-channels",
        type=int,
        nargs=2,
        metavar=("C1", "C2"),
        help="filters of the localisation network's two conv layers",
    )
    parser.add_argument("--loc-hidden", type=int, help="width of the localisation network's hidden layer")
    parser.add_argument(
        "--loc-coords",
        action="store_true",
        default=None,
        help="give the localisation network the pixel coordinates as two channels",
    )
    parser.add_argument("--iterations", type=int, help="refinements of theta (inverse-compositional STN; 1: plain)")
    parser.add_argument("--curriculum-epochs", type=int, help="widen the training rotations over this many epochs")
    parser.add_argument("--tps-points", type=int, help="control points per side of --transform tps (4: 16 points)")
    parser.add_argument("--ema-decay", type=float, help="evaluate a moving average of the weights (0: off)")
    parser.add_argument("--label-smoothing", type=float, help="label smoothing of the training loss (0: none)")
    parser.add_argument(
        "--fixed-draw", action="store_true", help="train on one fixed draw of the distortions (no redraw each epoch)"
    )
    parser.add_argument("--limit", type=int, help="use only the first LIMIT samples of each split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (weights, shuffling)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the distortions")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads on the CPU")
    parser.add_argument("--data-dir", help="data directory (default: $STN_DATA_DIR or data/)")
    parser.add_argument("--offline", action="store_true", help="never download (as STN_OFFLINE=1)")
    parser.add_argument("--out", help="checkpoint path (.pt; default artifacts/runs/<settings>.pt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> dict:
    """The command line: ``python -m stnlib.train --help``. Returns the metrics."""
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {
        name: getattr(args, name)
        for name in (
            "model",
            "transform",
            "out_size",
            "normalise",
            "padding_mode",
            "sampler",
            "optimizer",
            "lr",
            "momentum",
            "weight_decay",
            "schedule",
            "loc_lr_mult",
            "batch_size",
            "epochs",
            "grad_clip",
            "loc_init",
            "loc_downsample",
            "classifier",
            "loc_channels",
            "loc_hidden",
            "loc_coords",
            "iterations",
            "curriculum_epochs",
            "tps_points",
            "ema_decay",
            "label_smoothing",
        )
    }
    if args.fixed_draw:
        overrides["redraw"] = False
    recipe = get_recipe(args.recipe, **overrides)
    train_data, test_data = load_datasets(
        args.dataset,
        args.distortion,
        seed=args.data_seed,
        limit=args.limit,
        root=args.data_dir,
        download=False if args.offline else None,
    )
    torch.manual_seed(args.seed)
    model = model_for(recipe, train_data)
    device = resolve_device(args.device)
    size = CANVAS_SIZE[args.distortion]
    print(
        f"{args.dataset} ({train_data.source}), distortion {args.distortion} ({size}x{size}): "
        f"{len(train_data):,} train / {len(test_data):,} test; model {recipe.model} "
        f"({count_parameters(model):,} parameters), recipe {args.recipe}, device {device}",
        flush=True,
    )
    progress = False if args.no_progress else None
    metrics = train(model, train_data, test_data, recipe, seed=args.seed, device=device, progress=progress)
    ckpt = (
        Path(args.out)
        if args.out
        else cli_checkpoint(args.dataset, args.distortion, recipe.model, args.recipe, args.seed)
    )
    json_path = save_checkpoint(ckpt, model, metrics)
    history = metrics["history"][-1]
    errors, n = round(history["test_error"] * len(test_data)), len(test_data)
    print(f"checkpoint: {ckpt}; metrics: {json_path}")
    if metrics["undo"] is not None:
        print(format_undo(metrics["undo"]))
    print(
        f"final test error: {100 * metrics['final_test_error']:.2f}% ({errors}/{n}) "
        f"after {recipe.epochs} epochs in {metrics['wall_time_s']:.1f} s"
    )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
