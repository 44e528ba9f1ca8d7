"""2-D affine geometry: homogeneous matrices, normalised coordinates and the STN's theta.

Introduced in notebook 01 (affine matrices) and notebook 02 (normalised coordinates).

Convention:
    - Points are ``xy``: x is the column (grows to the right), y is the row (grows *down*).
    - Sizes are always ``(H, W)`` and are keyword-only, so they cannot be swapped with ``xy``.
    - ``*_pix`` coordinates are in pixels: pixel (col, row) has its centre at x = col, y = row.
    - ``*_norm`` coordinates are normalised to [-1, 1] per axis, as ``torch.nn.functional`` uses.
      With ``align_corners=True`` -1 and +1 are the *centres* of the corner pixels;
      with ``align_corners=False`` they are the *outer edges* of the corner pixels.
    - A matrix named ``a_trans_b`` takes points from frame ``b`` into frame ``a``
      (as in kornia). In this library ``theta`` is always ``src_norm_trans_dst_norm``: it maps
      each point of the output (destination) grid to the place in the input (source) where the
      sampler reads. That is why a theta that rotates coordinates by +phi shows the image
      rotated by -phi.
    - 3x3 matrices act on homogeneous column vectors (x, y, 1); ``compose(A, B) = A @ B``
      applies ``B`` first.
    - Angles are in degrees. With y pointing down, a positive angle turns points
      *clockwise on screen*.

Every function accepts a batch: matrices are ``(..., 3, 3)`` or ``(..., 2, 3)``, points
``(..., 2)``. Builders take Python floats or tensors of any shape ``(...)`` and return
``(..., 3, 3)``; float64 inputs stay float64.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .blocking import reference
from .validation import check_floating, check_shape, check_size

__all__ = [
    "rotation_matrix",
    "scale_matrix",
    "shear_matrix",
    "translation_matrix",
    "compose",
    "invert_affine",
    "theta_to_matrix",
    "matrix_to_theta",
    "about_point",
    "transform_points",
    "normalisation_matrix",
    "pixel_to_normalised",
    "normalised_to_pixel",
    "pixel_centres_norm",
    "unnormalise",
    "theta_from_pixel_transform",
    "pixel_transform_from_theta",
    "AffineParams",
    "compose_theta",
    "decompose_theta",
]


# --------------------------------------------------------------------------- helpers
def _as_tensors(*values, dtype=None, device=None):
    """Turn floats/tensors into tensors broadcast to one shape, with a floating dtype."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if dtype is None:
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        dtype = floats[0] if floats else torch.get_default_dtype()
    if device is None and tensors:
        device = tensors[0].device
    out = [torch.as_tensor(v, dtype=dtype, device=device) for v in values]
    return torch.broadcast_tensors(*out)


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    """Stack nested lists of same-shape tensors (or numbers) into a (..., R, C) tensor."""
    filled = [[e if isinstance(e, torch.Tensor) else torch.full_like(like, float(e)) for e in row] for row in rows]
    return torch.stack([torch.stack(row, dim=-1) for row in filled], dim=-2)


# --------------------------------------------------------------------------- builders
@reference
def rotation_matrix(angle_deg, *, dtype=None) -> torch.Tensor:
    """Homogeneous 3x3 rotation about the origin.

    Convention:
        x' = cos(a) x - sin(a) y,  y' = sin(a) x + cos(a) y. In image coordinates (y down)
        a positive angle turns points clockwise on screen.

    Args:
        angle_deg: float or tensor (...), the angle in degrees.
        dtype: optional dtype for float inputs (default: torch's default dtype).

    Returns:
        (..., 3, 3) tensor.

    Example:
        >>> rotation_matrix(90.0).round().abs()  # abs() only hides the sign of -0.0
        tensor([[0., 1., 0.],
                [1., 0., 0.],
                [0., 0., 1.]])
        >>> rotation_matrix(90.0)[0, 1]
        tensor(-1.)
    """
    (angle,) = _as_tensors(angle_deg, dtype=dtype)
    rad = angle * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], like=c)


@reference
def scale_matrix(scale_x, scale_y=None, *, dtype=None) -> torch.Tensor:
    """Homogeneous 3x3 scaling about the origin: x' = scale_x x, y' = scale_y y.

    Args:
        scale_x: float or tensor (...).
        scale_y: float or tensor (...); defaults to ``scale_x`` (uniform scaling).

    Returns:
        (..., 3, 3) tensor.

    Example:
        >>> scale_matrix(2.0, 0.5)
        tensor([[2.0000, 0.0000, 0.0000],
                [0.0000, 0.5000, 0.0000],
                [0.0000, 0.0000, 1.0000]])
    """
    sx, sy = _as_tensors(scale_x, scale_x if scale_y is None else scale_y, dtype=dtype)
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like=sx)


@reference
def shear_matrix(shear_x, shear_y=0.0, *, dtype=None) -> torch.Tensor:
    """Homogeneous 3x3 shear: x' = x + shear_x y, y' = shear_y x + y.

    Args:
        shear_x: float or tensor (...), how far x moves per unit of y.
        shear_y: float or tensor (...), how far y moves per unit of x (default 0).

    Returns:
        (..., 3, 3) tensor.
    """
    kx, ky = _as_tensors(shear_x, shear_y, dtype=dtype)
    return _matrix([[1, kx, 0], [ky, 1, 0], [0, 0, 1]], like=kx)


@reference
def translation_matrix(tx, ty, *, dtype=None) -> torch.Tensor:
    """Homogeneous 3x3 translation: x' = x + tx, y' = y + ty.

    Args:
        tx, ty: floats or tensors (...).

    Returns:
        (..., 3, 3) tensor.
    """
    tx, ty = _as_tensors(tx, ty, dtype=dtype)
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like=tx)


# --------------------------------------------------------------------------- algebra
@reference
def compose(*matrices: torch.Tensor) -> torch.Tensor:
    """Compose 3x3 transforms right to left: ``compose(A, B, C) = A @ B @ C`` applies C first.

    Args:
        *matrices: one or more (..., 3, 3) tensors (batch shapes broadcast).

    Returns:
        (..., 3, 3) tensor.

    Example:
        >>> T, S = translation_matrix(1.0, 0.0), scale_matrix(2.0)
        >>> transform_points(compose(T, S), torch.tensor([1.0, 1.0]))  # scale, then shift
        tensor([3., 2.])
        >>> transform_points(compose(S, T), torch.tensor([1.0, 1.0]))  # shift, then scale
        tensor([4., 2.])
    """
    if not matrices:
        raise ValueError("compose needs at least one matrix; got none")
    out = None
    for i, m in enumerate(matrices):
        check_floating(m, f"matrices[{i}]")
        check_shape(m, "...,3,3", name=f"matrices[{i}]")
        out = m if out is None else out @ m
    return out


@reference
def invert_affine(matrix: torch.Tensor) -> torch.Tensor:
    """Invert affine transforms, given as 3x3 matrices or as 2x3 thetas.

    Uses the closed form inv([A t; 0 1]) = [inv(A), -inv(A) t; 0 1].

    Args:
        matrix: (..., 3, 3) homogeneous matrix or (..., 2, 3) theta.

    Returns:
        A tensor of the same shape as ``matrix``.

    Warning:
        A singular linear part (zero scale) has no inverse; the result is then inf/nan.
    """
    check_floating(matrix, "matrix")
    if matrix.shape[-2:] == (2, 3):
        return matrix_to_theta(invert_affine(theta_to_matrix(matrix)))
    check_shape(matrix, "...,3,3", name="matrix")
    a_inv = torch.linalg.inv(matrix[..., :2, :2])
    t_inv = -(a_inv @ matrix[..., :2, 2:])
    bottom = matrix[..., 2:, :]
    return torch.cat([torch.cat([a_inv, t_inv], dim=-1), bottom], dim=-2)


@reference
def theta_to_matrix(theta: torch.Tensor) -> torch.Tensor:
    """Add the row (0, 0, 1) to a (..., 2, 3) theta, giving a (..., 3, 3) homogeneous matrix."""
    check_floating(theta, "theta")
    check_shape(theta, "...,2,3", name="theta")
    bottom = torch.zeros_like(theta[..., :1, :])
    bottom[..., 0, 2] = 1.0
    return torch.cat([theta, bottom], dim=-2)


@reference
def matrix_to_theta(matrix: torch.Tensor) -> torch.Tensor:
    """Drop the last row of a (..., 3, 3) affine matrix, giving a (..., 2, 3) theta.

    Raises ``ValueError`` if the last row is not (0, 0, 1): such a matrix is projective, not affine.
    """
    check_floating(matrix, "matrix")
    check_shape(matrix, "...,3,3", name="matrix")
    last = matrix[..., 2, :]
    expected = torch.tensor([0.0, 0.0, 1.0], dtype=matrix.dtype, device=matrix.device)
    if not torch.allclose(last, expected.expand_as(last), atol=1e-6):
        raise ValueError("matrix must be affine, with last row (0, 0, 1); got a projective matrix")
    return matrix[..., :2, :]


@reference
def about_point(matrix: torch.Tensor, point_xy) -> torch.Tensor:
    """Apply a transform about ``point_xy`` instead of the origin: T(p) @ matrix @ T(-p).

    Args:
        matrix: (..., 3, 3), e.g. a rotation or a scaling.
        point_xy: (x, y) as floats or a tensor (..., 2).

    Returns:
        (..., 3, 3) tensor. ``point_xy`` itself does not move.

    Example:
        >>> R = about_point(rotation_matrix(90.0), (1.0, 1.0))
        >>> transform_points(R, torch.tensor([1.0, 1.0]))
        tensor([1., 1.])
    """
    check_floating(matrix, "matrix")
    check_shape(matrix, "...,3,3", name="matrix")
    p = torch.as_tensor(point_xy, dtype=matrix.dtype, device=matrix.device)
    check_shape(p, "...,2", name="point_xy")
    to_p = translation_matrix(p[..., 0], p[..., 1])
    from_p = translation_matrix(-p[..., 0], -p[..., 1])
    return to_p @ matrix @ from_p


@reference
def transform_points(matrix: torch.Tensor, points_xy: torch.Tensor) -> torch.Tensor:
    """Apply an affine transform to points.

    Args:
        matrix: (..., 3, 3) homogeneous matrix or (..., 2, 3) theta.
        points_xy: (..., 2) points, x first (batch shapes broadcast with ``matrix``).

    Returns:
        (..., 2) transformed points.
    """
    check_floating(matrix, "matrix")
    check_floating(points_xy, "points_xy")
    check_shape(points_xy, "...,2", name="points_xy")
    if matrix.shape[-2:] != (2, 3):
        check_shape(matrix, "...,3,3", name="matrix")
    linear, shift = matrix[..., :2, :2], matrix[..., :2, 2]
    return (linear @ points_xy.unsqueeze(-1)).squeeze(-1) + shift


# --------------------------------------------------------------------------- normalised coordinates
@reference
def normalisation_matrix(*, size, align_corners: bool, dtype=None, device=None) -> torch.Tensor:
    """The 3x3 matrix ``norm_trans_pix`` taking pixel ``xy`` to normalised ``xy`` for an image of ``size``.

    Convention:
        align_corners=True:  x_norm = 2 x_pix / (W - 1) - 1   (-1/+1 at the corner pixels' centres)
        align_corners=False: x_norm = (2 x_pix + 1) / W - 1   (-1/+1 at the corner pixels' outer edges)
        and the same for y with H.

    Args:
        size: (H, W) of the image, keyword-only.
        align_corners: required keyword; see the convention above.

    Returns:
        (3, 3) tensor.

    Example:
        >>> normalisation_matrix(size=(2, 4), align_corners=False)
        tensor([[ 0.5000,  0.0000, -0.7500],
                [ 0.0000,  1.0000, -0.5000],
                [ 0.0000,  0.0000,  1.0000]])
    """
    height, width = check_size(size, "size", 2)
    dtype = dtype or torch.get_default_dtype()
    if align_corners:
        if height == 1 or width == 1:
            raise ValueError(f"size must be at least 2 pixels per side with align_corners=True; got {(height, width)}")
        sx, sy, tx, ty = 2.0 / (width - 1), 2.0 / (height - 1), -1.0, -1.0
    else:
        sx, sy, tx, ty = 2.0 / width, 2.0 / height, 1.0 / width - 1.0, 1.0 / height - 1.0
    return torch.tensor([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


@reference
def pixel_to_normalised(xy_pix: torch.Tensor, *, size, align_corners: bool) -> torch.Tensor:
    """Convert pixel coordinates (x = column, y = row) to normalised [-1, 1] coordinates.

    Args:
        xy_pix: (..., 2) pixel coordinates, x first.
        size: (H, W) of the image, keyword-only.
        align_corners: required keyword; see :func:`normalisation_matrix`.

    Returns:
        (..., 2) normalised coordinates.

    Example:
        >>> pixel_to_normalised(torch.tensor([[0.0, 0.0], [3.0, 1.0]]), size=(2, 4), align_corners=True)
        tensor([[-1., -1.],
                [ 1.,  1.]])
        >>> pixel_to_normalised(torch.tensor([[0.0, 0.0], [3.0, 1.0]]), size=(2, 4), align_corners=False)
        tensor([[-0.7500, -0.5000],
                [ 0.7500,  0.5000]])
    """
    check_floating(xy_pix, "xy_pix")
    check_shape(xy_pix, "...,2", name="xy_pix")
    m = normalisation_matrix(size=size, align_corners=align_corners, dtype=xy_pix.dtype, device=xy_pix.device)
    return transform_points(m, xy_pix)


@reference
def normalised_to_pixel(xy_norm: torch.Tensor, *, size, align_corners: bool) -> torch.Tensor:
    """Convert normalised [-1, 1] coordinates to pixel coordinates (x = column, y = row).

    Args:
        xy_norm: (..., 2) normalised coordinates, x first.
        size: (H, W) of the image, keyword-only.
        align_corners: required keyword; see :func:`normalisation_matrix`.

    Returns:
        (..., 2) pixel coordinates (not rounded; may fall outside the image).
    """
    check_floating(xy_norm, "xy_norm")
    check_shape(xy_norm, "...,2", name="xy_norm")
    m = normalisation_matrix(size=size, align_corners=align_corners, dtype=xy_norm.dtype, device=xy_norm.device)
    return transform_points(invert_affine(m), xy_norm)


@reference
def pixel_centres_norm(n: int, *, align_corners: bool, dtype=None, device=None) -> torch.Tensor:
    """The normalised coordinates of the ``n`` pixel centres along one axis: what a grid generator starts from.

    The same numbers as ``pixel_to_normalised`` of the pixels 0, 1, ..., n - 1, computed the way
    ``torch.nn.functional.affine_grid`` computes them (``linspace``, scaled by (n - 1) / n when
    ``align_corners=False``), so a grid built from them matches torch's to the last bit.

    Args:
        n: pixels along the axis (W for x, H for y).
        align_corners: required keyword; see :func:`normalisation_matrix`.

    Returns:
        (n,) tensor; a single pixel sits at 0.

    Example:
        >>> pixel_centres_norm(4, align_corners=False)
        tensor([-0.7500, -0.2500,  0.2500,  0.7500])
        >>> pixel_centres_norm(4, align_corners=True)
        tensor([-1.0000, -0.3333,  0.3333,  1.0000])
    """
    dtype = dtype or torch.get_default_dtype()
    if n <= 1:
        return torch.zeros(n, dtype=dtype, device=device)
    coords = torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device)
    return coords if align_corners else coords * (n - 1) / n  # in torch's order: times (n - 1), then over n


@reference
def unnormalise(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Normalised coordinates along an axis of ``size`` pixels -> pixel coordinates (any shape).

    ``align_corners=True``: x_pix = (x + 1) * ((size - 1) / 2); ``False``: x_pix = (x + 1) * (size / 2) - 0.5
    (the inverse of :func:`normalisation_matrix` along one axis). The same arithmetic, in the same
    order, as torch's sampler kernels (some compute ((x + 1) * size - 1) / 2, which differs only by
    exact factors of 2 and so rounds to the same number): a point that lands exactly on a pixel
    centre there must land on it here too, or it falls on the other side of a kink of the bilinear
    weights. (torch's CPU kernel may fuse the multiply and the subtraction into one rounding, as its
    compiler allows; a float32 coordinate can then differ from ours in the last place.) Works in
    place on one fresh copy (``coord + 1``), which keeps the sampler's memory passes few; the result
    is differentiable in ``coord``.

    Example:
        >>> unnormalise(torch.tensor([-1.0, 0.0, 1.0]), 4, align_corners=False)
        tensor([-0.5000,  1.5000,  3.5000])
    """
    out = coord + 1
    if align_corners:
        return out.mul_((size - 1) / 2)
    return out.mul_(size / 2).sub_(0.5)


@reference
def theta_from_pixel_transform(
    dst_pix_trans_src_pix: torch.Tensor, *, src_size, dst_size=None, align_corners: bool
) -> torch.Tensor:
    """Turn a pixel-space transform of the *image* into the normalised theta an STN uses.

    ``dst_pix_trans_src_pix`` says where each input pixel should land in the output (the way
    one describes an edit: "rotate 30 degrees about the centre"). The sampler needs the
    opposite direction in normalised coordinates::

        theta = src_norm_trans_src_pix @ inv(dst_pix_trans_src_pix) @ dst_pix_trans_dst_norm

    This also corrects for non-square images, where a rotation in [-1, 1]^2 would shear.

    Args:
        dst_pix_trans_src_pix: (..., 3, 3) forward transform in pixels.
        src_size: (H, W) of the input image, keyword-only.
        dst_size: (H, W) of the output image; defaults to ``src_size``.
        align_corners: required keyword; use the same value when you call affine_grid.

    Returns:
        (..., 2, 3) theta (``src_norm_trans_dst_norm``).

    Example:
        >>> H, W = 28, 28
        >>> centre = ((W - 1) / 2, (H - 1) / 2)
        >>> turn = about_point(rotation_matrix(30.0), centre)
        >>> theta = theta_from_pixel_transform(turn, src_size=(H, W), align_corners=False)
        >>> theta.shape
        torch.Size([2, 3])
    """
    check_floating(dst_pix_trans_src_pix, "dst_pix_trans_src_pix")
    check_shape(dst_pix_trans_src_pix, "...,3,3", name="dst_pix_trans_src_pix")
    dst_size = src_size if dst_size is None else dst_size
    kw = dict(align_corners=align_corners, dtype=dst_pix_trans_src_pix.dtype, device=dst_pix_trans_src_pix.device)
    src_norm_trans_src_pix = normalisation_matrix(size=src_size, **kw)
    dst_pix_trans_dst_norm = invert_affine(normalisation_matrix(size=dst_size, **kw))
    src_pix_trans_dst_pix = invert_affine(dst_pix_trans_src_pix)
    return matrix_to_theta(src_norm_trans_src_pix @ src_pix_trans_dst_pix @ dst_pix_trans_dst_norm)


@reference
def pixel_transform_from_theta(theta: torch.Tensor, *, src_size, dst_size=None, align_corners: bool) -> torch.Tensor:
    """The inverse of :func:`theta_from_pixel_transform`: where each input pixel lands, in pixels.

    Args:
        theta: (..., 2, 3), ``src_norm_trans_dst_norm``.
        src_size, dst_size: (H, W) of input and output (``dst_size`` defaults to ``src_size``).
        align_corners: required keyword.

    Returns:
        (..., 3, 3) ``dst_pix_trans_src_pix``.
    """
    check_floating(theta, "theta")
    check_shape(theta, "...,2,3", name="theta")
    dst_size = src_size if dst_size is None else dst_size
    kw = dict(align_corners=align_corners, dtype=theta.dtype, device=theta.device)
    src_pix_trans_src_norm = invert_affine(normalisation_matrix(size=src_size, **kw))
    dst_norm_trans_dst_pix = normalisation_matrix(size=dst_size, **kw)
    src_pix_trans_dst_pix = src_pix_trans_src_norm @ theta_to_matrix(theta) @ dst_norm_trans_dst_pix
    return invert_affine(src_pix_trans_dst_pix)


# --------------------------------------------------------------------------- parameters <-> theta
class AffineParams(NamedTuple):
    """The parts of an affine theta: ``theta = T(tx, ty) @ R(rotation_deg) @ Sh(shear) @ S(scale_x, scale_y)``.

    Each field is a tensor of shape (...). ``Sh(shear)`` is ``shear_matrix(shear)`` (x moves by
    ``shear * y``). A mirror image shows up as a negative ``scale_y``.
    """

    rotation_deg: torch.Tensor
    scale_x: torch.Tensor
    scale_y: torch.Tensor
    shear: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor


@reference
def compose_theta(rotation_deg=0.0, scale_x=1.0, scale_y=1.0, shear=0.0, tx=0.0, ty=0.0, *, dtype=None) -> torch.Tensor:
    """Build a (..., 2, 3) theta from its parts, in the order T @ R @ Sh @ S (scale first).

    Args:
        rotation_deg, scale_x, scale_y, shear, tx, ty: floats or tensors (...), in normalised units.

    Returns:
        (..., 2, 3) theta. ``compose_theta()`` is the identity.

    Example:
        >>> compose_theta()
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    r, sx, sy, k, tx, ty = _as_tensors(rotation_deg, scale_x, scale_y, shear, tx, ty, dtype=dtype)
    m = compose(translation_matrix(tx, ty), rotation_matrix(r), shear_matrix(k), scale_matrix(sx, sy))
    return matrix_to_theta(m)


@reference
def decompose_theta(theta: torch.Tensor) -> AffineParams:
    """Split a (..., 2, 3) theta into rotation, scale, shear and translation.

    The inverse of :func:`compose_theta`: ``compose_theta(*decompose_theta(theta))`` gives theta
    back (up to rounding), as long as its 2x2 part is invertible. The rotation is in (-180, 180];
    ``scale_x`` is never negative, so a reflection appears as a negative ``scale_y``.

    Args:
        theta: (..., 2, 3).

    Returns:
        :class:`AffineParams` of tensors (...).
    """
    check_floating(theta, "theta")
    check_shape(theta, "...,2,3", name="theta")
    a00, a01, a10, a11 = theta[..., 0, 0], theta[..., 0, 1], theta[..., 1, 0], theta[..., 1, 1]
    angle = torch.atan2(a10, a00)
    c, s = torch.cos(angle), torch.sin(angle)
    scale_x = torch.hypot(a00, a10)
    # Undo the rotation: U = R(-angle) @ A = [[scale_x, shear * scale_y], [0, scale_y]].
    u01 = c * a01 + s * a11
    scale_y = -s * a01 + c * a11
    shear = u01 / scale_y
    return AffineParams(torch.rad2deg(angle), scale_x, scale_y, shear, theta[..., 0, 2], theta[..., 1, 2])
