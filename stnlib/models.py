"""The networks of Part III: localisation network, spatial transformer, STN classifier and baselines.

Introduced in notebook 05 (training an STN); notebook 06 and the benchmarks reuse them.

Names follow the PyTorch STN tutorial so that one maps onto the other: ``localization`` (the
convolutional part of the localisation network), ``fc_loc`` (its regression layers, the last of
which starts at the identity: zero weight, identity bias), ``theta(x)`` and ``stn(x)``.

Convention:
    - Every model takes images in [0, 1] (background 0), shape (N, 1, H, W), and normalises them
      inside with the dataset's constants (``stnlib.data.NORMALISATION``, the only copy).
    - ``normalise="after"`` (the default): the sampler warps the raw image, so a read outside it
      sees 0, the true background, and the classifier gets the normalised *warped* image; the
      localisation network also sees the normalised input. ``normalise="before"`` normalises first,
      as the tutorial does; then zero padding inserts a bright frame (0 is brighter than the
      normalised background, about -0.42) that an STN can learn to exploit by zooming out
      (pytorch/tutorials issue #1117); use ``padding_mode="border"`` with it, or keep ``"after"``.
    - ``theta`` is ``src_norm_trans_dst_norm`` with ``align_corners=False`` (as in
      ``stnlib.geometry``): (N, 2, 3) for ``"affine"``, ``"similarity"`` and ``"attention"``,
      (N, 3, 3) for ``"projective"`` (a homography; see ``stnlib.warps.projective_grid``), and
      for ``"tps"`` the (N, K, 2) offsets of the K control points of a thin-plate spline
      (``stnlib.warps.tps_grid``; zero offsets are the identity). ``affine_theta`` gives every
      kind's affine part as (N, 2, 3), for statistics.
    - Notebook 07 adds transformers that are not one affine warp of the input:
      :class:`ParallelSTNClassifier` (several transformers side by side, the paper's 2xST on
      MNIST addition) and :class:`FeatureMapSTNClassifier` (a transformer on feature maps inside
      the classifier). Every model takes ``in_channels`` and ``num_classes`` (2 and 19 for addition).
    - ``sampler="torch"`` uses ``torch.nn.functional.affine_grid``/``grid_sample``;
      ``sampler="stnlib"`` the course's hand-built ones from ``stnlib.sampling`` (same results).
    - Models return logits (:class:`TutorialNet` returns log-probabilities, as the tutorial does;
      ``F.cross_entropy`` gives the same loss on either).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import sampling
from .blocking import reference
from .data import DATASETS, NORMALISATION
from .sampling import PADDING_MODES
from .validation import check_choice, check_floating, check_positive_int, check_shape, check_size
from .warps import (
    affine_part,
    grid_from_tps_matrix,
    projective_grid,
    tps_affine_theta,
    tps_control_points,
    tps_grid,
    tps_grid_matrix,
)

__all__ = [
    "TRANSFORMS",
    "SAMPLERS",
    "PLACEMENTS",
    "PADDING_MODES",
    "MODELS",
    "Normalise",
    "Normalize",
    "CLASSIFIERS",
    "similarity_theta",
    "identity_params",
    "params_to_theta",
    "refine_theta",
    "AddCoords",
    "localization_net",
    "TPSGrid",
    "SpatialTransformer",
    "ParallelTransformers",
    "ParallelSTNClassifier",
    "FeatureMapSTNClassifier",
    "ConvClassifier",
    "FCNClassifier",
    "STNClassifier",
    "CNNClassifier",
    "matched_cnn",
    "make_classifier",
    "FCNBaseline",
    "matched_fcn",
    "TutorialNet",
    "build_model",
    "count_parameters",
]

TRANSFORMS = ("affine", "similarity", "attention", "projective", "tps")
SAMPLERS = ("torch", "stnlib")
PLACEMENTS = ("after", "before")
#: ``"st2"``: two transformers side by side (:class:`ParallelSTNClassifier`); ``"stn-features"``: a
#: transformer on the feature maps after the first conv block (:class:`FeatureMapSTNClassifier`).
MODELS = ("stn", "cnn", "tutorial", "tutorial-cnn", "st2", "stn-features")
#: The classifier behind the transformer (``"stn"`` and ``"cnn"`` models): today's CNN, a CNN with
#: a quarter of its filters, or a fully connected net with three weight layers (the paper's FCN).
CLASSIFIERS = ("cnn", "tiny-cnn", "fcn")

#: What the regression layer outputs for each transform, and its identity value (the bias at init).
#: ``"tps"`` outputs 2 K zeros (the offsets of K control points; see :func:`identity_params`).
IDENTITY_PARAMS = {
    "affine": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # theta row by row
    "similarity": [0.0, 1.0, 0.0, 0.0],  # (angle a in radians, scale s, tx, ty)
    "attention": [1.0, 0.0, 0.0],  # (scale, tx, ty)
    "projective": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # homography row by row, h33 = 1
}


def identity_params(transform: str, tps_points: int = 4) -> list[float]:
    """The regression layer's output that means "no change" for ``transform`` (its bias at init).

    Example:
        >>> identity_params("attention"), len(identity_params("tps", tps_points=3))
        ([1.0, 0.0, 0.0], 18)
    """
    check_choice(transform, TRANSFORMS, "transform")
    if transform == "tps":
        return [0.0] * (2 * tps_points**2)
    return list(IDENTITY_PARAMS[transform])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Normalise(nn.Module):
    """(x - mean) / std with fixed constants (buffers, saved in checkpoints); any shape."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`: x * std + mean."""
        return x * self.std + self.mean


Normalize = Normalise  # the American spelling, as torchvision's transforms.Normalize


@reference
def similarity_theta(params: torch.Tensor) -> torch.Tensor:
    """The similarity transform ``[[s cos a, -s sin a, tx], [s sin a, s cos a, ty]]`` of each row of params.

    One number turns the image (the angle a, in radians), one scales it and two shift it; the
    affine transform needs four numbers to move together for a rotation. Notebook 05's
    Exercise 5 builds it by hand (it is switched off while exercises are checked).

    Args:
        params: (N, 4) float: angle a (radians), scale s, tx, ty; (0, 1, 0, 0) is the identity.

    Returns:
        (N, 2, 3) theta, differentiable with respect to params.

    Example:
        >>> similarity_theta(torch.tensor([[0.0, 0.5, 0.1, -0.2]]))
        tensor([[[ 0.5000, -0.0000,  0.1000],
                 [ 0.0000,  0.5000, -0.2000]]])
    """
    check_floating(params, "params")
    check_shape(params, "N,4", name="params")
    angle, scale, tx, ty = params.unbind(1)
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def params_to_theta(params: torch.Tensor, transform: str) -> torch.Tensor:
    """Turn the regression layer's output into a transform matrix.

    Args:
        params: (N, P) with P = 6 (affine), 4 (similarity: angle a in radians, scale s, tx, ty),
            3 (attention: scale s, tx, ty), 8 (projective) or 2 K (tps: the x and y offset of each
            of K control points, point by point).
        transform: one of :data:`TRANSFORMS`.

    Returns:
        (N, 2, 3) theta for affine, similarity (``[[s cos a, -s sin a, tx], [s sin a, s cos a, ty]]``:
        one number for the rotation, where the affine transform needs four to move together)
        and attention (``[[s, 0, tx], [0, s, ty]]``), (N, 3, 3) homography for projective (the 8
        values row by row, then 1), (N, K, 2) control-point offsets for tps.

    Example:
        >>> params_to_theta(torch.tensor([[0.5, 0.1, -0.2]]), "attention")
        tensor([[[ 0.5000,  0.0000,  0.1000],
                 [ 0.0000,  0.5000, -0.2000]]])
    """
    check_choice(transform, TRANSFORMS, "transform")
    check_floating(params, "params")
    if transform == "tps":
        check_shape(params, "N,P", name="params")
        if params.shape[1] % 2:
            raise ValueError(
                f"params must hold an x and a y offset per control point (an even P); got {params.shape[1]}"
            )
        return params.view(params.shape[0], -1, 2)
    size = len(IDENTITY_PARAMS[transform])
    check_shape(params, f"N,{size}", name="params")
    if transform == "affine":
        return params.view(-1, 2, 3)
    if transform == "similarity":
        return similarity_theta(params)
    if transform == "attention":
        scale, tx, ty = params.unbind(1)
        zero = torch.zeros_like(scale)
        return torch.stack([torch.stack([scale, zero, tx], 1), torch.stack([zero, scale, ty], 1)], 1)
    return torch.cat([params, torch.ones_like(params[:, :1])], 1).view(-1, 3, 3)


def refine_theta(theta: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
    """``theta`` refined by ``correction``: the transform p -> theta(correction(p)).

    Both map output coordinates to input coordinates (``src_norm_trans_dst_norm``). In an
    iterative transformer ``theta`` is the estimate so far and ``correction`` is predicted from
    the input warped by it: the output point p is read at correction(p) of the warped image,
    which shows the input at theta(correction(p)). Sampling the input once with the refined
    theta avoids blurring it twice.

    Args:
        theta, correction: (N, 2, 3) thetas, or both (N, 3, 3) homographies.

    Returns:
        (N, 2, 3) ``[A_theta A_corr | A_theta t_corr + t_theta]``, or the (N, 3, 3) product
        ``theta @ correction``.

    Example:
        >>> shift = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
        >>> zoom = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])
        >>> refine_theta(shift, zoom)
        tensor([[[0.5000, 0.0000, 0.5000],
                 [0.0000, 0.5000, 0.0000]]])
    """
    check_floating(theta, "theta")
    check_floating(correction, "correction")
    if theta.shape[-2:] == (3, 3):
        check_shape(correction, "N,3,3", name="correction")
        return theta @ correction
    check_shape(theta, "N,2,3", name="theta")
    check_shape(correction, "N,2,3", name="correction")
    linear, shift = theta[:, :, :2], theta[:, :, 2:]
    return torch.cat([linear @ correction[:, :, :2], linear @ correction[:, :, 2:] + shift], dim=2)


class AddCoords(nn.Module):
    """Append two channels holding each pixel's normalised x and y (CoordConv, Liu et al. 2018).

    A convolution is translation-equivariant: it cannot tell where in the image a pattern sits.
    With the coordinates as input channels it can, which helps a network that regresses a pose.

    Shapes:
        (N, C, H, W) -> (N, C + 2, H, W); the extra channels run from -1 to 1 (pixel centres,
        ``align_corners=True``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        ys = torch.linspace(-1.0, 1.0, height, dtype=x.dtype, device=x.device)
        xs = torch.linspace(-1.0, 1.0, width, dtype=x.dtype, device=x.device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([grid_x, grid_y]).expand(n, 2, height, width)
        return torch.cat([x, coords], dim=1)


def localization_net(
    in_size,
    *,
    channels=(20, 20),
    kernel: int = 5,
    downsample: int = 2,
    in_channels: int = 1,
    coords: bool = False,
) -> nn.Sequential:
    """The paper's ST-CNN localisation network (convolutional part).

    ``downsample`` x average pooling, then conv(k) -> max-pool 2 -> ReLU -> conv(k) -> ReLU,
    flattened: two 5x5 layers of 20 filters on a 2x downsampled input, as in the paper's appendix.

    Args:
        in_size: (H, W) of the input.
        channels: filters of the two conv layers.
        kernel: kernel size of both.
        downsample: average-pooling factor first (1: none).
        in_channels: channels of the input.
        coords: append the pixel coordinates as two more input channels (:class:`AddCoords`).

    Returns:
        ``nn.Sequential`` mapping (N, C, H, W) to (N, F) features.
    """
    height, width = check_size(in_size, "in_size", 2)
    c1, c2 = channels
    layers = [nn.AvgPool2d(downsample)] if downsample > 1 else []
    if coords:
        layers.append(AddCoords())
    layers += [
        nn.Conv2d(in_channels + 2 * bool(coords), c1, kernel_size=kernel),
        nn.MaxPool2d(2, stride=2),
        nn.ReLU(True),
        nn.Conv2d(c1, c2, kernel_size=kernel),
        nn.ReLU(True),
        nn.Flatten(),
    ]
    side = min(height, width) // max(downsample, 1)
    if (side - kernel + 1) // 2 - kernel + 1 < 1:
        raise ValueError(
            f"in_size is too small for this localisation net (downsample {downsample}, kernel {kernel}); "
            f"got {(height, width)}"
        )
    return nn.Sequential(*layers)


def _output_features(net: nn.Module, in_channels: int, in_size) -> int:
    """How many features ``net`` outputs per sample for an (in_channels, *in_size) input."""
    with torch.no_grad():
        return int(net(torch.zeros(1, in_channels, *in_size)).flatten(1).shape[1])


def _affine_grid(theta, size, align_corners, sampler):
    if sampler == "stnlib":
        return sampling.affine_grid(theta, size, align_corners=align_corners)
    return F.affine_grid(theta, size, align_corners=align_corners)


def _grid_sample(x, grid, padding_mode, align_corners, sampler):
    if sampler == "stnlib":
        return sampling.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)


class TPSGrid(nn.Module):
    """The grid generator of a thin-plate-spline transformer, with its linear system solved once.

    A TPS grid is linear in where the control points read (:func:`stnlib.warps.tps_grid_matrix`),
    so the matrix is computed at construction (float64, stored as a buffer) and each forward pass
    is one matrix product.

    Args:
        points_per_side: the control points are a regular ``points_per_side`` x ``points_per_side``
            grid over [-1, 1]^2 (:func:`stnlib.warps.tps_control_points`; 4 gives K = 16).
        out_size: (H, W) of the output grid.
        align_corners: where the normalised -1/+1 lie.

    Shapes:
        ``forward(offsets)``: (N, K, 2) -> grid (N, *out_size, 2). ``affine_theta(offsets)``: -> (N, 2, 3).
    """

    def __init__(self, points_per_side: int = 4, out_size=(28, 28), *, align_corners: bool = False):
        super().__init__()
        self.out_size = check_size(out_size, "out_size", 2)
        self.align_corners = bool(align_corners)
        control = tps_control_points(points_per_side, dtype=torch.float64)
        self.register_buffer("control", control.float())
        self.register_buffer(
            "matrix", tps_grid_matrix(control, self.out_size, align_corners=self.align_corners).float()
        )

    def forward(self, offsets: torch.Tensor, size=None) -> torch.Tensor:
        if size is not None and tuple(size) != self.out_size:  # another output size: solve for it
            return tps_grid(offsets, self.control.to(offsets.dtype), (len(offsets), 1, *size), self.align_corners)
        control = self.control.to(offsets.dtype)
        return grid_from_tps_matrix(self.matrix.to(offsets.dtype), control + offsets, self.out_size)

    def affine_theta(self, offsets: torch.Tensor) -> torch.Tensor:
        """The affine part of each spline (its best affine fit), (N, 2, 3)."""
        return tps_affine_theta(offsets, self.control.to(offsets.dtype))


class SpatialTransformer(nn.Module):
    """Localisation network -> theta -> sampling grid -> sampler (the paper's Figure 2).

    It works on any (N, C, H, W) input: images, or the feature maps inside a network (the
    paper's SVHN models), where ``in_channels`` is the number of feature maps; every channel is
    warped with the same grid.

    Args:
        in_size: (H, W) of the input.
        transform: ``"affine"`` (6 parameters), ``"similarity"`` (4), ``"attention"`` (scale +
            translation, 3), ``"projective"`` (8) or ``"tps"`` (a thin-plate spline, 2 K).
        out_size: (H, W) of the output (default ``in_size``). Smaller than the input, the
            transformer crops: at the identity it shows the whole input, downsampled.
        localization: the convolutional part, (N, C, H, W) -> (N, F); default
            :func:`localization_net`.
        loc_hidden: width of the hidden layer of ``fc_loc``.
        sampler: ``"torch"`` or ``"stnlib"`` (the hand-built sampler of Part I).
        padding_mode: what reads outside the input see (``"zeros"``, ``"border"``, ``"reflection"``).
        align_corners: passed to the grid generator and the sampler.
        in_channels: channels of the input.
        tps_points: control points per side of the ``"tps"`` transform (K = tps_points ** 2).

    Shapes:
        ``forward(x)``: (N, C, H, W) -> (N, C, *out_size). ``theta(x)``: (N, 2, 3), (N, 3, 3) or,
        for tps, (N, K, 2) offsets. ``affine_part(theta)``: (N, 2, 3).
    """

    def __init__(
        self,
        in_size,
        *,
        transform: str = "affine",
        out_size=None,
        localization: nn.Module | None = None,
        loc_hidden: int = 32,
        sampler: str = "torch",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        in_channels: int = 1,
        tps_points: int = 4,
    ):
        super().__init__()
        self.in_size = check_size(in_size, "in_size", 2)
        self.out_size = self.in_size if out_size is None else check_size(out_size, "out_size", 2)
        self.transform = check_choice(transform, TRANSFORMS, "transform")
        self.sampler = check_choice(sampler, SAMPLERS, "sampler")
        self.padding_mode = check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.align_corners = bool(align_corners)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.tps_points = tps_points
        self.tps = TPSGrid(tps_points, self.out_size, align_corners=self.align_corners) if transform == "tps" else None
        if localization is None:
            localization = localization_net(self.in_size, in_channels=in_channels)
        self.localization = localization
        features = _output_features(self.localization, in_channels, self.in_size)
        identity = identity_params(transform, tps_points)
        self.fc_loc = nn.Sequential(
            nn.Linear(features, loc_hidden), nn.ReLU(True), nn.Linear(loc_hidden, len(identity))
        )
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Identity initialisation: the last ``fc_loc`` layer outputs the identity for any input."""
        last = self.fc_loc[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor(identity_params(self.transform, self.tps_points), dtype=last.bias.dtype))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The transform predicted for each input: (N, C, H, W) -> (N, 2, 3), (N, 3, 3) or (N, K, 2)."""
        check_floating(x, "x")
        check_shape(x, f"N,{self.in_channels},{self.in_size[0]},{self.in_size[1]}", name="x")
        return params_to_theta(self.fc_loc(self.localization(x).flatten(1)), self.transform)

    def affine_part(self, theta: torch.Tensor) -> torch.Tensor:
        """The affine part of a batch of this transformer's thetas, (N, 2, 3).

        Affine, similarity and attention thetas are returned as they are; a homography gives its
        first two rows over h33, a thin-plate spline its best affine fit.
        """
        if self.transform == "tps":
            return self.tps.affine_theta(theta)
        return affine_part(theta)

    def grid(self, theta: torch.Tensor, size=None) -> torch.Tensor:
        """Sampling grid (N, H_out, W_out, 2) for a batch of ``theta`` (``size``: another (H_out, W_out))."""
        height, width = self.out_size if size is None else size
        if self.transform == "tps":
            return self.tps(theta, size=(height, width))
        size = (theta.shape[0], self.in_channels, height, width)
        if self.transform == "projective":
            return projective_grid(theta, size, align_corners=self.align_corners)
        return _affine_grid(theta, size, self.align_corners, self.sampler)

    def sample(self, x: torch.Tensor, theta: torch.Tensor, size=None) -> torch.Tensor:
        """Warp ``x`` (N, C, H, W) with a given ``theta``: (N, C, H_out, W_out) (``size``: another (H_out, W_out))."""
        return _grid_sample(x, self.grid(theta, size), self.padding_mode, self.align_corners, self.sampler)

    def forward(self, x: torch.Tensor, loc_input: torch.Tensor | None = None) -> torch.Tensor:
        """Warp ``x`` with the theta predicted from ``loc_input`` (default: ``x`` itself)."""
        return self.sample(x, self.theta(x if loc_input is None else loc_input))


class ConvClassifier(nn.Module):
    """conv(k5) -> max-pool 2 -> ReLU -> conv(k5) -> max-pool 2 -> ReLU -> fc -> ReLU -> fc.

    Two convolutions and two max-pooling layers, as the paper's CNNs; no padding, and pooling
    before ReLU (the same result, cheaper), as the tutorial. A 28x28 input gives 4x4 maps.

    Args:
        in_size: (H, W) of its input.
        channels: filters of the two conv layers.
        hidden: width of the hidden fully connected layer.
        num_classes: outputs.

    Shapes:
        (N, 1, H, W) normalised images -> (N, num_classes) logits.
    """

    def __init__(self, in_size, *, channels=(16, 32), hidden: int = 64, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.in_size = check_size(in_size, "in_size", 2)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(True),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(True),
            nn.Flatten(),
        )
        features = _output_features(self.features, in_channels, self.in_size)
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(True), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FCNClassifier(nn.Module):
    """fc -> ReLU -> fc -> ReLU -> fc: the paper's FCN, three weight layers and no convolution.

    With no pooling and no shared weights it has no built-in tolerance to shifts or turns: each
    pose of a digit must be learned separately, so it gains most from a transformer that brings
    every digit to one pose.

    Args:
        in_size: (H, W) of its input.
        hidden: widths of the two hidden layers.
        num_classes: outputs.

    Shapes:
        (N, 1, H, W) normalised images -> (N, num_classes) logits.
    """

    def __init__(self, in_size, *, hidden=(64, 64), num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.in_size = check_size(in_size, "in_size", 2)
        h1, h2 = hidden
        features = in_channels * self.in_size[0] * self.in_size[1]
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, h1),
            nn.ReLU(True),
            nn.Linear(h1, h2),
            nn.ReLU(True),
            nn.Linear(h2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def make_classifier(kind: str, in_size, *, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """One of :data:`CLASSIFIERS` for (N, in_channels, *in_size) normalised images.

    ``"cnn"``: :class:`ConvClassifier` with 16 and 32 filters and 64 hidden units (about 47,000
    parameters on 28x28); ``"tiny-cnn"``: 4 and 8 filters, 16 hidden units (about 3,000);
    ``"fcn"``: :class:`FCNClassifier` with two hidden layers of 64 (about 55,000).
    """
    check_choice(kind, CLASSIFIERS, "classifier")
    kw = dict(num_classes=num_classes, in_channels=in_channels)
    if kind == "cnn":
        return ConvClassifier(in_size, **kw)
    if kind == "tiny-cnn":
        return ConvClassifier(in_size, channels=(4, 8), hidden=16, **kw)
    return FCNClassifier(in_size, **kw)


def _normaliser(dataset: str, normalise: str) -> Normalise:
    check_choice(dataset, DATASETS, "dataset")
    check_choice(normalise, PLACEMENTS, "normalise")
    return Normalise(*NORMALISATION[dataset])


class STNClassifier(nn.Module):
    """ST-CNN: a spatial transformer in front of a small CNN classifier.

    Args:
        in_size: (H, W) of the input images, e.g. (42, 42) for RTS.
        transform: ``"affine"``, ``"attention"`` or ``"projective"``.
        out_size: (H, W) the transformer outputs and the classifier sees (default (28, 28):
            the size of an undistorted digit, so the ideal transformer undoes the distortion).
        dataset: whose normalisation constants to use.
        normalise: ``"after"`` (default) or ``"before"`` the transformer (see the module docstring).
        sampler, padding_mode, align_corners: passed to :class:`SpatialTransformer`.
        channels, hidden: of the :class:`ConvClassifier`.
        loc_channels, loc_hidden: of the localisation network.
        loc_downsample: the localisation network's average-pooling factor on its input (the paper: 2;
            1 keeps the full resolution, at about twice the cost).
        loc_coords: give the localisation network the pixel coordinates as two more channels.
        classifier: ``"cnn"`` (:class:`ConvClassifier` with ``channels`` and ``hidden``),
            ``"tiny-cnn"`` or ``"fcn"`` (see :func:`make_classifier`).
        iterations: how often the localisation network looks (the inverse-compositional STN of
            Lin and Lucey, 2017): from the second time on, it sees the input warped by the theta so
            far (at the input's size) and predicts a correction, composed onto it with
            :func:`refine_theta`. The classifier always gets the input warped once, by the final
            theta. 1 is the plain STN (the only choice for ``"tps"``).
        in_channels: channels of the input (2 for MNIST addition); all are warped with one theta.
        tps_points: control points per side of the ``"tps"`` transform.

    Shapes:
        ``forward``: (N, C, H, W) in [0, 1] -> (N, num_classes) logits. ``stn``: -> (N, C, *out_size)
        in the input's units. ``theta``: -> (N, 2, 3), (N, 3, 3) or (N, K, 2) (tps).
        ``affine_theta``: -> (N, 2, 3).
    """

    def __init__(
        self,
        in_size=(42, 42),
        *,
        transform: str = "affine",
        out_size=(28, 28),
        dataset: str = "mnist",
        normalise: str = "after",
        sampler: str = "torch",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        channels=(16, 32),
        hidden: int = 64,
        loc_channels=(20, 20),
        loc_hidden: int = 32,
        num_classes: int = 10,
        loc_downsample: int = 2,
        loc_coords: bool = False,
        classifier: str = "cnn",
        iterations: int = 1,
        in_channels: int = 1,
        tps_points: int = 4,
    ):
        super().__init__()
        self.norm = _normaliser(dataset, normalise)
        self.normalise = normalise
        self.iterations = check_positive_int(iterations, "iterations")
        if iterations > 1 and transform == "tps":
            raise ValueError("iterations must be 1 for transform 'tps' (two splines do not compose into one)")
        self.in_size = check_size(in_size, "in_size", 2)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.transformer = SpatialTransformer(
            self.in_size,
            transform=transform,
            out_size=out_size,
            localization=localization_net(
                self.in_size,
                channels=loc_channels,
                downsample=loc_downsample,
                coords=loc_coords,
                in_channels=in_channels,
            ),
            loc_hidden=loc_hidden,
            sampler=sampler,
            padding_mode=padding_mode,
            align_corners=align_corners,
            in_channels=in_channels,
            tps_points=tps_points,
        )
        if classifier == "cnn":
            self.classifier = ConvClassifier(
                self.transformer.out_size,
                channels=channels,
                hidden=hidden,
                num_classes=num_classes,
                in_channels=in_channels,
            )
        else:
            self.classifier = make_classifier(
                classifier, self.transformer.out_size, num_classes=num_classes, in_channels=in_channels
            )

    @property
    def localization(self) -> nn.Module:
        """The convolutional part of the localisation network (as in the tutorial)."""
        return self.transformer.localization

    @property
    def fc_loc(self) -> nn.Module:
        """The regression part of the localisation network (as in the tutorial)."""
        return self.transformer.fc_loc

    def localization_parameters(self):
        """Parameters of the localisation network (``localization`` and ``fc_loc``), for their own learning rate."""
        return list(self.transformer.parameters())

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [0, 1] -> the predicted theta (N, 2, 3), homography (N, 3, 3) or TPS offsets (N, K, 2)."""
        theta = self.transformer.theta(self.norm(x))
        for _ in range(self.iterations - 1):  # look again at the input as warped so far
            view = self.transformer.sample(x, theta, size=self.transformer.in_size)
            theta = refine_theta(theta, self.transformer.theta(self.norm(view)))
        return theta

    def affine_theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine part of the predicted transform, (N, 2, 3) (see :meth:`SpatialTransformer.affine_part`)."""
        return self.transformer.affine_part(self.theta(x))

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: the warped, normalised image (N, C, *out_size)."""
        theta = self.theta(x)
        if self.normalise == "before":
            return self.transformer.sample(self.norm(x), theta)
        return self.norm(self.transformer.sample(x, theta))

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer's output in the input's units ([0, 1]), for display: (N, C, *out_size)."""
        return self.norm.inverse(self._warp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self._warp(x))


class ParallelTransformers(nn.Module):
    """Several spatial transformers side by side on one input, their outputs stacked along the channels.

    Each transformer predicts its own theta from the whole input and warps the whole input; the
    outputs come back as one tensor, transformer t's in channels t * C to t * C + C - 1.

    Args:
        transformers: the :class:`SpatialTransformer` s (the same ``in_size``, ``out_size`` and
            ``in_channels``).

    Shapes:
        ``forward(x, loc_input=None)``: (N, C, H, W) -> (N, T * C, *out_size). ``theta``: -> (N, T, ...)
        (each transformer's theta, stacked after the batch). ``affine_theta``: -> (N, T, 2, 3).
    """

    def __init__(self, transformers):
        super().__init__()
        self.transformers = nn.ModuleList(transformers)
        if not self.transformers:
            raise ValueError("transformers must hold at least one SpatialTransformer; got none")
        first = self.transformers[0]
        for t in self.transformers[1:]:
            if (t.in_size, t.out_size, t.in_channels) != (first.in_size, first.out_size, first.in_channels):
                raise ValueError(
                    "transformers must share in_size, out_size and in_channels; got "
                    f"{(first.in_size, first.out_size, first.in_channels)} and {(t.in_size, t.out_size, t.in_channels)}"
                )

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """Every transformer's theta for ``x`` (N, C, H, W), stacked: (N, T, ...)."""
        return torch.stack([t.theta(x) for t in self.transformers], dim=1)

    def affine_theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine part of every transformer's theta, (N, T, 2, 3)."""
        return torch.stack([t.affine_part(t.theta(x)) for t in self.transformers], dim=1)

    def forward(self, x: torch.Tensor, loc_input: torch.Tensor | None = None) -> torch.Tensor:
        """Warp ``x`` with each transformer's theta predicted from ``loc_input`` (default ``x``); stack the outputs."""
        source = x if loc_input is None else loc_input
        return torch.cat([t.sample(x, t.theta(source)) for t in self.transformers], dim=1)


class ParallelSTNClassifier(nn.Module):
    """Several spatial transformers side by side on one input, their outputs stacked for one classifier.

    The paper's 2xST-FCN / 2xST-CNN for MNIST addition: :class:`ParallelTransformers` of T
    transformers, each with its own localisation network, each seeing the whole input (every channel)
    and warping the whole input; the classifier gets the T warped copies stacked as T * C channels. Nothing tells a transformer which digit to
    look at: if each learns to attend to a different one, it is because that lowers the loss.

    Args:
        in_size: (H, W) of the input (42x42 for addition).
        transformers: how many transformers (T).
        in_channels: channels of the input (C; 2 for addition, one digit in each).
        num_classes: outputs (19 for addition: sums 0 to 18).
        transform, out_size, dataset, sampler, padding_mode, align_corners, loc_channels,
        loc_hidden, loc_downsample, tps_points: of each :class:`SpatialTransformer`, as in
            :class:`STNClassifier` (normalisation is after the transformers).
        classifier: ``"cnn"``, ``"tiny-cnn"`` or ``"fcn"`` (:func:`make_classifier`) on T * C channels.

    Shapes:
        ``forward``: (N, C, H, W) in [0, 1] -> (N, num_classes) logits. ``stn``: -> (N, T * C,
        *out_size), transformer t's output in channels t * C .. t * C + C - 1. ``theta``: -> (N, T, 2, 3)
        (or the transform's shape with T after N). ``affine_theta``: -> (N, T, 2, 3).
    """

    def __init__(
        self,
        in_size=(42, 42),
        *,
        transformers: int = 2,
        in_channels: int = 2,
        num_classes: int = 19,
        transform: str = "affine",
        out_size=(28, 28),
        dataset: str = "mnist",
        sampler: str = "torch",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        loc_channels=(20, 20),
        loc_hidden: int = 32,
        loc_downsample: int = 2,
        classifier: str = "cnn",
        tps_points: int = 4,
    ):
        super().__init__()
        self.norm = _normaliser(dataset, "after")
        self.in_size = check_size(in_size, "in_size", 2)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        count = check_positive_int(transformers, "transformers")
        self.parallel = ParallelTransformers(
            SpatialTransformer(
                self.in_size,
                transform=transform,
                out_size=out_size,
                localization=localization_net(
                    self.in_size, channels=loc_channels, downsample=loc_downsample, in_channels=in_channels
                ),
                loc_hidden=loc_hidden,
                sampler=sampler,
                padding_mode=padding_mode,
                align_corners=align_corners,
                in_channels=in_channels,
                tps_points=tps_points,
            )
            for _ in range(count)
        )
        self.classifier = make_classifier(
            classifier, self.transformer.out_size, num_classes=num_classes, in_channels=count * in_channels
        )

    @property
    def transformers(self) -> nn.ModuleList:
        """The spatial transformers (of :attr:`parallel`)."""
        return self.parallel.transformers

    @property
    def transformer(self) -> SpatialTransformer:
        """The first transformer (its sizes are every transformer's)."""
        return self.parallel.transformers[0]

    def localization_parameters(self):
        """Every transformer's localisation network, for their own learning rate."""
        return list(self.parallel.parameters())

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> every transformer's theta, stacked after the batch: (N, T, ...)."""
        return self.parallel.theta(self.norm(x))

    def affine_theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the affine part of every transformer's transform, (N, T, 2, 3)."""
        return self.parallel.affine_theta(self.norm(x))

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """The transformers' outputs in the input's units, stacked: (N, T * C, *out_size)."""
        return self.parallel(x, loc_input=self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(self.stn(x)))


class FeatureMapSTNClassifier(nn.Module):
    """A CNN with a spatial transformer *inside*: on the feature maps of its first conv block.

    conv(k5) -> max-pool 2 -> ReLU -> **spatial transformer on the C1 feature maps** -> conv(k5) ->
    max-pool 2 -> ReLU -> fc -> ReLU -> fc. The localisation network sees the feature maps (C1 channels, at
    full resolution, 3x3 kernels), and the sampler warps all C1 maps with one theta. Normalised
    coordinates make this possible: theta means the same geometric change on a 19x19 feature map
    as on the 42x42 image it came from (the maps cover nearly the same field; each conv without
    padding trims a border of 2 pixels).

    Args:
        in_size: (H, W) of the input images.
        transform: of the transformer.
        out_size: the transformer crops the feature maps to the size that an ``out_size`` image's
            maps have (default (28, 28), as :class:`STNClassifier` crops the image: 42x42 images give
            19x19 maps, cropped to 12x12), so the layers after it match the input-level STN's.
        channels, hidden: of the classifier, as :class:`ConvClassifier`.
        loc_channels, loc_hidden: of the localisation network on the feature maps.
        in_channels, num_classes, dataset, sampler, padding_mode, align_corners, tps_points: as
            :class:`STNClassifier`.

    Shapes:
        ``forward``: (N, C, H, W) in [0, 1] -> (N, num_classes). ``features(x)``: -> (N, C1, h, w)
        before the transformer. ``theta``: as :class:`SpatialTransformer`. ``stn``: the input
        image warped by that theta, (N, C, *out_size), for display.
    """

    def __init__(
        self,
        in_size=(42, 42),
        *,
        transform: str = "affine",
        out_size=(28, 28),
        dataset: str = "mnist",
        channels=(16, 32),
        hidden: int = 64,
        loc_channels=(20, 20),
        loc_hidden: int = 32,
        in_channels: int = 1,
        num_classes: int = 10,
        sampler: str = "torch",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        tps_points: int = 4,
    ):
        super().__init__()
        self.norm = _normaliser(dataset, "after")
        self.in_size = check_size(in_size, "in_size", 2)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        c1, c2 = channels
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, c1, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(True))
        with torch.no_grad():
            map_size = tuple(self.block1(torch.zeros(1, in_channels, *self.in_size)).shape[-2:])
            out_map = tuple(self.block1(torch.zeros(1, in_channels, *check_size(out_size, "out_size", 2))).shape[-2:])
        self.map_size, self.out_size = map_size, check_size(out_size, "out_size", 2)
        self.transformer = SpatialTransformer(
            map_size,
            transform=transform,
            out_size=out_map,
            localization=localization_net(map_size, channels=loc_channels, kernel=3, downsample=1, in_channels=c1),
            loc_hidden=loc_hidden,
            sampler=sampler,
            padding_mode=padding_mode,
            align_corners=align_corners,
            in_channels=c1,
            tps_points=tps_points,
        )
        self.block2 = nn.Sequential(nn.Conv2d(c1, c2, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(True), nn.Flatten())
        features = _output_features(self.block2, c1, out_map)
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(True), nn.Linear(hidden, num_classes))

    def localization_parameters(self):
        """The localisation network on the feature maps, for its own learning rate."""
        return list(self.transformer.parameters())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the feature maps the transformer warps, (N, C1, h, w)."""
        return self.block1(self.norm(x))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the theta predicted from the feature maps."""
        return self.transformer.theta(self.features(x))

    def affine_theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the affine part of that theta, (N, 2, 3)."""
        return self.transformer.affine_part(self.theta(x))

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """The input image warped by the theta the feature maps gave (what the warp means), (N, C, *out_size)."""
        return self.transformer.sample(x, self.theta(x), size=self.out_size)  # the same grid, at the image's resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.transformer(self.features(x))))


class CNNClassifier(nn.Module):
    """The baseline: :class:`ConvClassifier` on the normalised input, with no transformer.

    Args:
        in_size: (H, W) of the input images.
        dataset: whose normalisation constants to use.
        channels, hidden, num_classes: of the :class:`ConvClassifier`.

    Shapes:
        (N, 1, H, W) in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(
        self,
        in_size=(42, 42),
        *,
        dataset: str = "mnist",
        channels=(16, 32),
        hidden: int = 64,
        num_classes: int = 10,
        in_channels: int = 1,
    ):
        super().__init__()
        self.norm = _normaliser(dataset, "after")
        self.classifier = ConvClassifier(
            in_size, channels=channels, hidden=hidden, num_classes=num_classes, in_channels=in_channels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x))


class FCNBaseline(nn.Module):
    """The FCN baseline: :class:`FCNClassifier` on the normalised input, with no transformer.

    Shapes:
        (N, 1, H, W) in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(
        self, in_size=(28, 28), *, dataset: str = "mnist", hidden=(64, 64), num_classes: int = 10, in_channels: int = 1
    ):
        super().__init__()
        self.norm = _normaliser(dataset, "after")
        self.classifier = FCNClassifier(in_size, hidden=hidden, num_classes=num_classes, in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x))


def matched_fcn(stn: STNClassifier, *, dataset: str = "mnist") -> FCNBaseline:
    """An :class:`FCNBaseline` on ``stn``'s input with about as many parameters as ``stn``.

    Both hidden layers get the same width h, the one whose parameter count comes closest.
    """
    in_size, in_channels = stn.in_size, stn.in_channels
    features = in_channels * in_size[0] * in_size[1]
    num_classes = stn.classifier.head[-1].out_features
    target = count_parameters(stn)
    # total(h) = (features + 1) h + (h + 1) h + (h + 1) num_classes
    best = min(range(1, 2048), key=lambda h: abs((features + 1) * h + (h + 1) * h + (h + 1) * num_classes - target))
    return FCNBaseline(in_size, dataset=dataset, hidden=(best, best), num_classes=num_classes, in_channels=in_channels)


def matched_cnn(stn: STNClassifier, *, in_size=None, dataset: str = "mnist", channels=None) -> CNNClassifier:
    """A :class:`CNNClassifier` with about as many parameters as ``stn`` (the paper's fair comparison).

    The convolutions keep ``stn``'s classifier widths; the hidden fully connected layer is
    widened (or narrowed) so that the total parameter count is the closest possible.

    Args:
        stn: the model to match.
        in_size: (H, W) of the input (default: the transformer's input size).
        dataset: whose normalisation constants to use.
        channels: conv widths (default: those of ``stn.classifier``).

    Returns:
        :class:`CNNClassifier`.
    """
    in_size = stn.in_size if in_size is None else in_size
    in_channels = stn.in_channels
    convs = [m for m in stn.classifier.features if isinstance(m, nn.Conv2d)]
    channels = channels or (convs[0].out_channels, convs[1].out_channels)
    num_classes = stn.classifier.head[-1].out_features
    kw = dict(dataset=dataset, channels=channels, num_classes=num_classes, in_channels=in_channels)
    probe = CNNClassifier(in_size, hidden=1, **kw)
    conv_params = count_parameters(probe.classifier.features)
    features = probe.classifier.head[0].in_features
    # total(h) = conv_params + (features + 1) h + (h + 1) num_classes, linear in h.
    per_hidden = features + 1 + num_classes
    hidden = max(1, round((count_parameters(stn) - conv_params - num_classes) / per_hidden))
    return CNNClassifier(in_size, hidden=hidden, **kw)


class TutorialNet(nn.Module):
    """The PyTorch STN tutorial's network, layer for layer (``spatial_transformer_tutorial.py``).

    Classifier: conv(1->10, k5) -> max-pool 2 -> ReLU -> conv(10->20, k5) -> Dropout2d -> max-pool 2
    -> ReLU -> fc(320->50) -> ReLU -> dropout -> fc(50->10) -> log-softmax. Localisation:
    conv(1->8, k7) -> max-pool 2 -> ReLU -> conv(8->10, k5) -> max-pool 2 -> ReLU, then
    ``fc_loc``: fc(90->32) -> ReLU -> fc(32->6), identity-initialised. The sizes 320 and 90 hold for
    28x28 inputs; other sizes (42x42 for RTS) give other fully connected input sizes. Layers are
    created in the tutorial's order, so a seed gives the tutorial's initial weights.

    Differences, all optional: the tutorial normalises in the data pipeline, before the
    transformer; here the model normalises (``normalise="before"`` reproduces the tutorial), and
    ``align_corners=False`` is passed explicitly (the tutorial relies on that default).

    Args:
        in_size: (H, W) of the input.
        use_stn: False gives the tutorial's classifier alone (no transformer).
        dataset, normalise, sampler, padding_mode: as :class:`STNClassifier`.

    Shapes:
        (N, 1, H, W) in [0, 1] -> (N, 10) log-probabilities.
    """

    def __init__(
        self,
        in_size=(28, 28),
        *,
        use_stn: bool = True,
        dataset: str = "mnist",
        normalise: str = "before",
        sampler: str = "torch",
        padding_mode: str = "zeros",
    ):
        super().__init__()
        height, width = check_size(in_size, "in_size", 2)
        self.in_size = (height, width)
        self.use_stn = use_stn
        self.normalise = normalise
        self.sampler = check_choice(sampler, SAMPLERS, "sampler")
        self.padding_mode = check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.norm = _normaliser(dataset, normalise)
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc_features = 20 * (((height - 4) // 2 - 4) // 2) * (((width - 4) // 2 - 4) // 2)
        self.fc1 = nn.Linear(self.fc_features, 50)
        self.fc2 = nn.Linear(50, 10)
        if use_stn:
            self.localization = nn.Sequential(
                nn.Conv2d(1, 8, kernel_size=7),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True),
                nn.Conv2d(8, 10, kernel_size=5),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True),
            )
            self.loc_features = 10 * (((height - 6) // 2 - 4) // 2) * (((width - 6) // 2 - 4) // 2)
            self.fc_loc = nn.Sequential(nn.Linear(self.loc_features, 32), nn.ReLU(True), nn.Linear(32, 3 * 2))
            self.fc_loc[2].weight.data.zero_()
            self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def localization_parameters(self):
        """Parameters of ``localization`` and ``fc_loc`` (empty without a transformer)."""
        if not self.use_stn:
            return []
        return list(self.localization.parameters()) + list(self.fc_loc.parameters())

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) images in [0, 1] -> theta (N, 2, 3)."""
        if not self.use_stn:
            raise ValueError("theta needs a transformer; this TutorialNet has use_stn=False")
        xs = self.localization(self.norm(x))
        return self.fc_loc(xs.view(-1, self.loc_features)).view(-1, 2, 3)

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x)
        if not self.use_stn:
            return z
        theta = self.fc_loc(self.localization(z).view(-1, self.loc_features)).view(-1, 2, 3)
        source = z if self.normalise == "before" else x
        grid = _affine_grid(theta, source.size(), False, self.sampler)
        warped = _grid_sample(source, grid, self.padding_mode, False, self.sampler)
        return warped if self.normalise == "before" else self.norm(warped)

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer's output in the input's units ([0, 1]), for display: (N, 1, H, W)."""
        return self.norm.inverse(self._warp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._warp(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, self.fc_features)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def build_model(
    name: str = "stn",
    *,
    in_size=(42, 42),
    dataset: str = "mnist",
    transform: str = "affine",
    out_size=(28, 28),
    normalise: str | None = None,
    sampler: str = "torch",
    padding_mode: str = "zeros",
    loc_downsample: int = 2,
    loc_channels=(20, 20),
    loc_hidden: int = 32,
    loc_coords: bool = False,
    classifier: str = "cnn",
    iterations: int = 1,
    in_channels: int = 1,
    num_classes: int = 10,
    tps_points: int = 4,
) -> nn.Module:
    """Build one of :data:`MODELS` by name (what ``python -m stnlib.train --model`` does).

    Args:
        name: ``"stn"`` (:class:`STNClassifier`), ``"cnn"`` (:func:`matched_cnn` of the STN that
            these arguments describe), ``"tutorial"`` (:class:`TutorialNet`), ``"tutorial-cnn"``
            (its classifier alone), ``"st2"`` (:class:`ParallelSTNClassifier` with two
            transformers) or ``"stn-features"`` (:class:`FeatureMapSTNClassifier`).
        in_size: (H, W) of the input.
        dataset: whose normalisation constants to use.
        transform, out_size: of the STN (``"stn"``, ``"cnn"`` and ``"st2"``; the tutorial net is
            affine and keeps the input size, the feature-map transformer keeps the maps' size).
        normalise: ``"after"`` or ``"before"``; default ``"after"``, but ``"before"`` for the tutorial models.
        sampler, padding_mode: of the transformer.
        loc_downsample, loc_channels, loc_hidden, loc_coords, iterations: of the STN's localisation
            network (``"stn"``; see :class:`STNClassifier`).
        classifier: one of :data:`CLASSIFIERS`; with ``"cnn"`` as the model name, ``"fcn"`` gives
            the FCN baseline (:func:`matched_fcn`), the others :func:`matched_cnn`.
        in_channels, num_classes: of the data (1 and 10; 2 and 19 for MNIST addition).
        tps_points: control points per side of a ``"tps"`` transform.

    Returns:
        the model, in training mode, on the CPU.
    """
    check_choice(name, MODELS, "name")
    if name in ("tutorial", "tutorial-cnn"):
        if (in_channels, num_classes) != (1, 10):
            raise ValueError(
                f"the tutorial's network takes 1 channel and 10 classes; got {in_channels} and {num_classes}"
            )
        return TutorialNet(
            in_size,
            use_stn=name == "tutorial",
            dataset=dataset,
            normalise=normalise or "before",
            sampler=sampler,
            padding_mode=padding_mode,
        )
    check_choice(classifier, CLASSIFIERS, "classifier")
    common = dict(
        dataset=dataset,
        transform=transform,
        sampler=sampler,
        padding_mode=padding_mode,
        in_channels=in_channels,
        num_classes=num_classes,
        tps_points=tps_points,
        loc_channels=tuple(loc_channels),
        loc_hidden=loc_hidden,
    )
    if name == "st2":
        return ParallelSTNClassifier(
            in_size, transformers=2, out_size=out_size, loc_downsample=loc_downsample, classifier=classifier, **common
        )
    if name == "stn-features":
        return FeatureMapSTNClassifier(in_size, out_size=out_size, **common)
    stn = STNClassifier(
        in_size,
        out_size=out_size,
        normalise=normalise or "after",
        loc_downsample=loc_downsample,
        loc_coords=loc_coords,
        classifier=classifier,
        iterations=iterations,
        **common,
    )
    if name == "stn":
        return stn
    return matched_fcn(stn, dataset=dataset) if classifier == "fcn" else matched_cnn(stn, dataset=dataset)
