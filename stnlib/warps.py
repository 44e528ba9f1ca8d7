"""Sampling grids beyond the affine one: projective (homography) and thin-plate-spline grids.

Used by ``stnlib.data`` (the P and E distortions of distorted MNIST) and by ``stnlib.models``
(the projective spatial transformer); introduced with them in notebook 05.

Convention (the same as ``stnlib.sampling``):
    - A grid is (N, H, W, 2) holding, for each *output* pixel, the normalised (x, y) point of the
      *input* it reads; feed it to ``grid_sample``.
    - A 3x3 ``homography`` is ``src_norm_trans_dst_norm``, like ``theta``: it maps the homogeneous
      output point (x_t, y_t, 1) to (u, v, w), and the input point read is (u / w, v / w).
      An affine theta is the special case whose last row is (0, 0, 1).
    - ``align_corners`` places the normalised -1/+1 as in ``torch.nn.functional.affine_grid``.

These functions are plain tensor arithmetic (differentiable, usable in a model) and do not call
``stnlib.sampling``. The grid generators are marked ``@reference`` (:mod:`stnlib.blocking`): they
compute what notebook 02's exercises ask for (``projective_grid`` with a last row (0, 0, 1) is
``affine_grid``), so they are switched off while an exercise is checked.
"""

from __future__ import annotations

import torch

from .blocking import reference
from .geometry import pixel_centres_norm
from .validation import check_floating, check_shape, check_size

__all__ = ["base_grid", "projective_grid", "homography_from_points", "tps_control_points", "tps_grid"]


@reference
def base_grid(size, *, align_corners: bool, dtype=None, device=None) -> torch.Tensor:
    """The homogeneous normalised coordinates (x_t, y_t, 1) of every output pixel centre.

    Args:
        size: (H, W) of the output.
        align_corners: required keyword; see the module docstring.

    Returns:
        (H, W, 3) tensor; ``base_grid(...)[i, j] = (x_t, y_t, 1)`` for row i, column j.

    Example:
        >>> base_grid((1, 2), align_corners=False)[0]
        tensor([[-0.5000,  0.0000,  1.0000],
                [ 0.5000,  0.0000,  1.0000]])
    """
    height, width = check_size(size, "size", 2)
    dtype = dtype or torch.get_default_dtype()
    xs = pixel_centres_norm(width, align_corners=align_corners, dtype=dtype, device=device)
    ys = pixel_centres_norm(height, align_corners=align_corners, dtype=dtype, device=device)
    return torch.stack(
        [
            xs.expand(height, width),
            ys.unsqueeze(1).expand(height, width),
            torch.ones(height, width, dtype=dtype, device=device),
        ],
        dim=-1,
    )


@reference
def projective_grid(homography: torch.Tensor, size, align_corners: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """Sampling grid for a batch of homographies: ``affine_grid`` generalised to 3x3 matrices.

    Each output pixel's homogeneous point (x_t, y_t, 1) is mapped to (u, v, w) = H (x_t, y_t, 1)
    and the grid holds (u / w, v / w). With a last row (0, 0, 1) this equals ``affine_grid``.

    Args:
        homography: (N, 3, 3) float, ``src_norm_trans_dst_norm``.
        size: (N, C, H, W), the size of the *output* (as ``affine_grid``).
        align_corners: where the normalised -1/+1 lie.
        eps: |w| is kept at least ``eps`` (with its sign) so that points at infinity stay finite.

    Returns:
        grid: (N, H, W, 2), last dimension (x, y). Differentiable in ``homography``.
    """
    check_floating(homography, "homography")
    check_shape(homography, "N,3,3", name="homography")
    n, _, height, width = check_size(size, "size", 4)
    if n != homography.shape[0]:
        raise ValueError(
            f"size[0] must equal the batch size of homography ({homography.shape[0]}); got size={tuple(size)}"
        )
    base = base_grid((height, width), align_corners=align_corners, dtype=homography.dtype, device=homography.device)
    uvw = base.reshape(1, height * width, 3) @ homography.transpose(1, 2)  # (N, H*W, 3)
    w = uvw[..., 2:]
    w = torch.where(w.abs() < eps, torch.full_like(w, eps) * torch.where(w < 0, -1.0, 1.0), w)
    return (uvw[..., :2] / w).reshape(n, height, width, 2)


def homography_from_points(src_xy: torch.Tensor, dst_xy: torch.Tensor) -> torch.Tensor:
    """The homography that maps four points ``dst_xy`` onto four points ``src_xy``.

    Solves the 8x8 linear system of the direct linear transform with h33 = 1.

    Args:
        src_xy: (N, 4, 2) points in the input (where the sampler should read).
        dst_xy: (N, 4, 2) points in the output. No three of them may be collinear.

    Returns:
        (N, 3, 3) ``src_norm_trans_dst_norm`` with H[:, 2, 2] = 1.

    Example:
        >>> square = torch.tensor([[[-1.0, -1], [1, -1], [1, 1], [-1, 1]]])
        >>> h = homography_from_points(0.5 * square, square)  # output corners read the input halfway in
        >>> torch.allclose(h, torch.diag(torch.tensor([0.5, 0.5, 1.0])).unsqueeze(0), atol=1e-6)
        True
    """
    check_floating(src_xy, "src_xy")
    check_floating(dst_xy, "dst_xy")
    check_shape(src_xy, "N,4,2", name="src_xy")
    check_shape(dst_xy, "N,4,2", name="dst_xy")
    if src_xy.shape != dst_xy.shape:
        raise ValueError(f"dst_xy must have the same shape as src_xy {tuple(src_xy.shape)}; got {tuple(dst_xy.shape)}")
    x, y = dst_xy[..., 0], dst_xy[..., 1]
    u, v = src_xy[..., 0], src_xy[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # u = (h11 x + h12 y + h13) / (h31 x + h32 y + 1), and the same for v with the second row.
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # (N, 8, 8)
    b = torch.cat([u, v], dim=1).unsqueeze(-1)  # (N, 8, 1)
    h = torch.linalg.solve(a, b).squeeze(-1)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).reshape(-1, 3, 3)


def tps_control_points(points_per_side: int = 4, *, dtype=None, device=None) -> torch.Tensor:
    """A regular ``points_per_side`` x ``points_per_side`` grid of control points spanning [-1, 1]^2.

    Returns:
        (K, 2) tensor of (x, y), K = points_per_side ** 2, row by row.
    """
    if points_per_side < 2:
        raise ValueError(f"points_per_side must be at least 2; got {points_per_side}")
    axis = torch.linspace(-1.0, 1.0, points_per_side, dtype=dtype or torch.get_default_dtype(), device=device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """The thin-plate radial basis U(r) = r^2 log(r^2), with U(0) = 0."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp_min(1e-12)), torch.zeros_like(r2))


@reference
def tps_grid(offsets: torch.Tensor, control_xy: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """Sampling grid of a thin-plate spline: control point k of the output reads the input at
    ``control_xy[k] + offsets[:, k]``, and every other point follows the smoothest interpolation.

    Args:
        offsets: (N, K, 2) float, displacement of each control point, normalised units.
        control_xy: (K, 2) control points in the output, e.g. :func:`tps_control_points`.
        size: (N, C, H, W), the size of the output.
        align_corners: where the normalised -1/+1 lie.

    Returns:
        grid: (N, H, W, 2). Zero offsets give the identity grid.
    """
    check_floating(offsets, "offsets")
    check_shape(offsets, "N,K,2", name="offsets")
    check_floating(control_xy, "control_xy")
    check_shape(control_xy, "K,2", name="control_xy")
    if offsets.shape[1] != control_xy.shape[0]:
        raise ValueError(
            f"offsets must have shape (N, {control_xy.shape[0]}, 2) to match control_xy; got {tuple(offsets.shape)}"
        )
    n, _, height, width = check_size(size, "size", 4)
    k = control_xy.shape[0]
    ctrl = control_xy.to(offsets.dtype)
    # Solve [[U, P], [P^T, 0]] [w; a] = [target; 0] for the spline weights w (K, 2) and the affine part a (3, 2).
    u = _tps_kernel(torch.cdist(ctrl, ctrl) ** 2)
    p = torch.cat([torch.ones(k, 1, dtype=ctrl.dtype, device=ctrl.device), ctrl], dim=1)
    system = torch.zeros(k + 3, k + 3, dtype=ctrl.dtype, device=ctrl.device)
    system[:k, :k], system[:k, k:], system[k:, :k] = u, p, p.T
    target = torch.cat([ctrl + offsets, torch.zeros(n, 3, 2, dtype=ctrl.dtype, device=ctrl.device)], dim=1)
    # One factorisation for the whole batch: the system is the same for every sample, so solve for
    # the (K + 3, N * 2) right-hand sides at once (a batched solve would factorise it N times).
    rhs = target.permute(1, 0, 2).reshape(k + 3, n * 2)
    params = torch.linalg.solve(system, rhs).reshape(k + 3, n, 2).permute(1, 0, 2)  # (N, K + 3, 2)
    points = base_grid((height, width), align_corners=align_corners, dtype=ctrl.dtype, device=ctrl.device)
    points = points[..., :2].reshape(-1, 2)  # (H*W, 2)
    ones = torch.ones(len(points), 1, dtype=ctrl.dtype, device=ctrl.device)
    basis = torch.cat([_tps_kernel(torch.cdist(points, ctrl) ** 2), ones, points], dim=1)
    return (basis @ params).reshape(n, height, width, 2)
