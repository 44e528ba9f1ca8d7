"""Sampling grids beyond the affine one: projective (homography) and thin-plate-spline grids.

Used by ``stnlib.data`` (the P and E distortions of distorted MNIST) and by ``stnlib.models``
(the projective and thin-plate-spline spatial transformers); the projective grid is introduced
in notebook 05, the thin-plate spline in notebook 07, whose exercises build
:func:`tps_kernel`, :func:`tps_system` and :func:`tps_grid` by hand.

Convention (the same as ``stnlib.sampling``):
    - A grid is (N, H, W, 2) holding, for each *output* pixel, the normalised (x, y) point of the
      *input* it reads; feed it to ``grid_sample``.
    - A 3x3 ``homography`` is ``src_norm_trans_dst_norm``, like ``theta``: it maps the homogeneous
      output point (x_t, y_t, 1) to (u, v, w), and the input point read is (u / w, v / w).
      An affine theta is the special case whose last row is (0, 0, 1).
    - A thin-plate spline is given by K control points of the *output* (``control_xy``, (K, 2))
      and, for each sample, where in the *input* each of them reads: ``control_xy + offsets``
      (``offsets``, (N, K, 2); zero offsets are the identity).
    - ``align_corners`` places the normalised -1/+1 as in ``torch.nn.functional.affine_grid``.

These functions are plain tensor arithmetic (differentiable, usable in a model) and do not call
``stnlib.sampling``. The grid generators and the TPS pieces are marked ``@reference``
(:mod:`stnlib.blocking`): they compute what notebook 02's and 07's exercises ask for
(``projective_grid`` with a last row (0, 0, 1) is ``affine_grid``), so they are switched off
while an exercise is checked.
"""

from __future__ import annotations

import torch

from .blocking import reference
from .geometry import pixel_centres_norm
from .validation import check_floating, check_shape, check_size

__all__ = [
    "base_grid",
    "projective_grid",
    "homography_from_points",
    "affine_part",
    "tps_control_points",
    "tps_kernel",
    "tps_system",
    "tps_grid_matrix",
    "tps_affine_matrix",
    "tps_grid",
    "grid_from_tps_matrix",
    "tps_affine_theta",
]


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


def affine_part(theta: torch.Tensor) -> torch.Tensor:
    """The affine part of a transform: a (..., 2, 3) theta unchanged, a (..., 3, 3) homography's first two rows / h33.

    Example:
        >>> affine_part(torch.tensor([[[2.0, 0, 0.4], [0, 2, 0], [0, 0, 2]]]))
        tensor([[[1.0000, 0.0000, 0.2000],
                 [0.0000, 1.0000, 0.0000]]])
    """
    check_floating(theta, "theta")
    if theta.dim() >= 3 and theta.shape[-2:] == (3, 3):
        return theta[..., :2, :] / theta[..., 2:, 2:]
    check_shape(theta, "...,2,3", name="theta")
    return theta


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
        (K, 2) tensor of (x, y), K = points_per_side ** 2, row by row (x varies fastest).

    Example:
        >>> tps_control_points(2)
        tensor([[-1., -1.],
                [ 1., -1.],
                [-1.,  1.],
                [ 1.,  1.]])
    """
    if not (isinstance(points_per_side, int) and points_per_side >= 2):
        raise ValueError(f"points_per_side must be an int of at least 2; got {points_per_side!r}")
    axis = torch.linspace(-1.0, 1.0, points_per_side, dtype=dtype or torch.get_default_dtype(), device=device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


# --------------------------------------------------------------------------- thin-plate splines
# A thin-plate spline (TPS) maps each output point p = (x, y) to the input point
#     f(p) = a_0 + a_x x + a_y y + sum_k w_k U(|p - c_k|^2),   U(r^2) = r^2 log r^2,
# with K control points c_k. Given where each control point should read (its target y_k), the
# coefficients solve the linear system L [w; a] = [Y; 0] with
#     L = [[U(|c_i - c_j|^2)   P],      P = [1, x_k, y_k] (K x 3),
#          [P^T                0]],
# whose last three rows ask sum w_k = 0 and sum w_k c_k = 0 (no affine part hides in the w_k). Of
# all maps that interpolate the control points it bends the least (smallest bending energy). L
# depends on the control points only, so it is solved once per control grid; and since f is
# linear in the targets, the whole grid is one matrix times Y: grid = (B L^-1)[:, :K] Y, with B the
# rows [U(|p - c_k|^2), 1, x, y] of the output points (tps_grid_matrix).


@reference
def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """The thin-plate radial basis U = r^2 log(r^2) of squared distances ``r2``, with U(0) = 0.

    The limit at 0 is 0, but ``0 * log(0)`` is ``0 * -inf = nan`` in floating point, and so is its
    gradient; the log is therefore taken of r2 clamped away from 0, and 0 is put where r2 is 0.

    Args:
        r2: squared distances, any shape, >= 0.

    Returns:
        the same shape; finite, with a finite gradient everywhere.

    Example:
        >>> tps_kernel(torch.tensor([0.0, 1.0, 4.0]))
        tensor([0.0000, 0.0000, 5.5452])
    """
    check_floating(r2, "r2")
    safe = torch.where(r2 > 0, r2, torch.ones_like(r2))  # log(1) = 0: a safe value where r2 is 0
    return torch.where(r2 > 0, r2 * torch.log(safe), torch.zeros_like(r2))


def _squared_distances(points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """|p_i - c_k|^2 for (M, 2) points and (K, 2) control points: (M, K), exact (no matmul trick)."""
    return ((points[:, None, :] - control[None, :, :]) ** 2).sum(-1)


@reference
def tps_system(control_xy: torch.Tensor) -> torch.Tensor:
    """The (K + 3) x (K + 3) matrix L = [[U(|c_i - c_j|^2), P], [P^T, 0]] of a control grid, P = [1, x, y].

    Args:
        control_xy: (K, 2) control points (x, y), not all on one line.

    Returns:
        (K + 3, K + 3), symmetric, in control_xy's dtype.

    Example:
        >>> tps_system(tps_control_points(2))[4:, :4]  # the rows of P^T: ones, the x and the y of the points
        tensor([[ 1.,  1.,  1.,  1.],
                [-1.,  1., -1.,  1.],
                [-1., -1.,  1.,  1.]])
    """
    check_floating(control_xy, "control_xy")
    check_shape(control_xy, "K,2", name="control_xy")
    k = control_xy.shape[0]
    p = torch.cat([torch.ones(k, 1, dtype=control_xy.dtype, device=control_xy.device), control_xy], dim=1)
    top = torch.cat([tps_kernel(_squared_distances(control_xy, control_xy)), p], dim=1)
    bottom = torch.cat([p.T, torch.zeros(3, 3, dtype=control_xy.dtype, device=control_xy.device)], dim=1)
    return torch.cat([top, bottom], dim=0)


def _tps_inverse(control_xy: torch.Tensor) -> torch.Tensor:
    """L^-1 of the control grid, solved in float64: (K + 3, K + 3)."""
    system = tps_system(control_xy.double())
    return torch.linalg.solve(system, torch.eye(len(system), dtype=torch.float64, device=system.device))


@reference
def tps_grid_matrix(control_xy: torch.Tensor, size, *, align_corners: bool) -> torch.Tensor:
    """The matrix M with grid = M @ Y: a TPS sampling grid as a linear function of the control targets Y.

    Solves the control grid's system once (in float64); a spatial transformer stores M and then
    needs one matrix product per batch.

    Args:
        control_xy: (K, 2) control points in the output, e.g. :func:`tps_control_points`.
        size: (H, W) of the output.
        align_corners: where the normalised -1/+1 lie.

    Returns:
        (H * W, K) in control_xy's dtype: row i gives output pixel i (row by row) as a weighting of
        the K targets; each row sums to 1 (the identity targets give the identity grid).
    """
    check_floating(control_xy, "control_xy")
    check_shape(control_xy, "K,2", name="control_xy")
    height, width = check_size(size, "size", 2)
    k = control_xy.shape[0]
    points = base_grid((height, width), align_corners=align_corners, dtype=torch.float64, device=control_xy.device)
    points = points[..., :2].reshape(-1, 2)  # (H*W, 2)
    ones = torch.ones(len(points), 1, dtype=torch.float64, device=control_xy.device)
    basis = torch.cat([tps_kernel(_squared_distances(points, control_xy.double())), ones, points], dim=1)
    return (basis @ _tps_inverse(control_xy)[:, :k]).to(control_xy.dtype)


@reference
def tps_affine_matrix(control_xy: torch.Tensor) -> torch.Tensor:
    """The (3, K) matrix giving the affine part (a_0, a_x, a_y) of the TPS through targets Y: A @ Y."""
    check_floating(control_xy, "control_xy")
    check_shape(control_xy, "K,2", name="control_xy")
    k = control_xy.shape[0]
    return _tps_inverse(control_xy)[k:, :k].to(control_xy.dtype)


def _check_offsets(offsets: torch.Tensor, control_xy: torch.Tensor) -> None:
    check_floating(offsets, "offsets")
    check_shape(offsets, "N,K,2", name="offsets")
    check_floating(control_xy, "control_xy")
    check_shape(control_xy, "K,2", name="control_xy")
    if offsets.shape[1] != control_xy.shape[0]:
        raise ValueError(
            f"offsets must have shape (N, {control_xy.shape[0]}, 2) to match control_xy; got {tuple(offsets.shape)}"
        )


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
        grid: (N, H, W, 2), differentiable in ``offsets``. Zero offsets give the identity grid;
        offsets that move the control points by one affine map give that map's ``affine_grid``.
    """
    _check_offsets(offsets, control_xy)
    n, _, height, width = check_size(size, "size", 4)
    if n != offsets.shape[0]:
        raise ValueError(f"size[0] must equal the batch size of offsets ({offsets.shape[0]}); got size={tuple(size)}")
    matrix = tps_grid_matrix(control_xy.to(offsets.dtype), (height, width), align_corners=align_corners)
    return grid_from_tps_matrix(matrix, control_xy.to(offsets.dtype) + offsets, (height, width))


@reference
def grid_from_tps_matrix(matrix: torch.Tensor, targets: torch.Tensor, size) -> torch.Tensor:
    """(H * W, K) matrix of :func:`tps_grid_matrix` and (N, K, 2) targets -> grid (N, H, W, 2)."""
    height, width = check_size(size, "size", 2)
    return (matrix @ targets).reshape(targets.shape[0], height, width, 2)


@reference
def tps_affine_theta(offsets: torch.Tensor, control_xy: torch.Tensor) -> torch.Tensor:
    """The affine part of each thin-plate spline as a theta (N, 2, 3): a_0 + a_x x + a_y y.

    The spline's non-affine part is what bends; this part is the best affine fit of the control
    points' displacement, so it says how much the TPS rotates, scales and shifts (stnlib.undo uses it).

    Example:
        >>> control = tps_control_points(3)
        >>> shifted = tps_affine_theta(torch.full((1, 9, 2), 0.25), control)  # every point moved by 0.25
        >>> torch.allclose(shifted, torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, 0.25]]]), atol=1e-6)
        True
    """
    _check_offsets(offsets, control_xy)
    targets = control_xy.to(offsets.dtype) + offsets
    a = tps_affine_matrix(control_xy.to(offsets.dtype)) @ targets  # (N, 3, 2): rows a_0, a_x, a_y
    return torch.stack([a[:, 1], a[:, 2], a[:, 0]], dim=-1)  # (N, 2, 3): [[a_x, a_y, a_0]] per output coordinate
