"""The grid generator and the sampler, written from the formulas (the course's reference).

Introduced in notebook 02 (``affine_grid``) and notebook 03 (``grid_sample``).

``affine_grid`` and ``grid_sample`` take the same arguments as their namesakes in
``torch.nn.functional`` and give the same results (and, for bilinear sampling, the same
gradients), so they drop in wherever torch's would. They never call torch's versions: every
step is ordinary tensor arithmetic plus ``gather``, and the gradient of bilinear sampling is
written by hand (:class:`BilinearSampleFunction`, the paper's equations 6-7). Only
:func:`warp`, the notebooks' one-line "grid, then sample", can run torch's instead (``sampler="torch"``).

Convention:
    - ``grid[n, i, j] = (x, y)``: the normalised point of the *input* that output pixel
      (row i, column j) reads. x is the column, y the row.
    - ``align_corners=True``:  x_pix = (x + 1) / 2 * (W - 1)   (-1/+1 at corner pixel centres)
      ``align_corners=False``: x_pix = ((x + 1) * W - 1) / 2    (-1/+1 at corner pixel edges)
    - ``padding_mode``: what a read outside the image sees. ``"zeros"``: 0;
      ``"border"``: the nearest edge pixel; ``"reflection"``: the image mirrored at its border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .blocking import is_blocked, reference
from .geometry import unnormalise
from .validation import check_choice, check_floating, check_shape, check_size
from .warps import base_grid

__all__ = [
    "affine_grid",
    "grid_sample",
    "warp",
    "unnormalise",
    "apply_padding",
    "bilinear_sample_pixels",
    "nearest_sample_pixels",
    "BilinearSampleFunction",
]

MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")


# --------------------------------------------------------------------------- the grid generator
@reference
def affine_grid(theta: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """Sampling grid for a batch of affine thetas, as ``torch.nn.functional.affine_grid``.

    For each output pixel centre (x_t, y_t) in normalised coordinates, the grid holds
    ``theta @ (x_t, y_t, 1)``: where in the input that pixel reads.

    Args:
        theta: (N, 2, 3) float, ``src_norm_trans_dst_norm``.
        size: (N, C, H, W), the size of the *output*.
        align_corners: where the normalised -1/+1 lie (see the module docstring).

    Returns:
        grid: (N, H, W, 2), last dimension (x, y).

    Example:
        >>> affine_grid(torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]), (1, 1, 2, 2), align_corners=True)[0]
        tensor([[[-1., -1.],
                 [ 1., -1.]],
        <BLANKLINE>
                [[-1.,  1.],
                 [ 1.,  1.]]])
    """
    check_floating(theta, "theta")
    check_shape(theta, "N,2,3", name="theta")
    n, _, height, width = check_size(size, "size", 4)
    if n != theta.shape[0]:
        raise ValueError(f"size[0] must equal the batch size of theta ({theta.shape[0]}); got size={tuple(size)}")
    base = base_grid((height, width), align_corners=align_corners, dtype=theta.dtype, device=theta.device)
    grid = base.reshape(1, height * width, 3) @ theta.transpose(1, 2)  # (N, H*W, 2): theta @ (x_t, y_t, 1)
    return grid.reshape(n, height, width, 2)


# --------------------------------------------------------------------------- coordinates
# unnormalise (normalised -> pixel coordinates along one axis) lives in stnlib.geometry.


def _clip(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Clamp to [0, size - 1]. The gradient is 1 strictly inside and 0 at or beyond the ends (as torch)."""
    inside = (coord > 0) & (coord < size - 1)
    return torch.where(inside, coord, coord.detach().clamp(0, size - 1))


def _reflect(coord: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Reflect coordinates into [low, high] by mirroring at both ends (any number of times)."""
    span = high - low
    if span <= 0:
        return torch.zeros_like(coord)
    shifted = coord - low
    sign = torch.where(shifted < 0, -1.0, 1.0).to(coord.dtype)
    distance = shifted * sign  # |coord - low|, with gradient +-1 (+1 at exactly low, as torch)
    extra = torch.fmod(distance, span)
    flips = torch.floor(distance.detach() / span)
    even = torch.remainder(flips, 2) == 0
    return torch.where(even, extra + low, span - extra + low)


@reference
def apply_padding(coord: torch.Tensor, size: int, padding_mode: str, align_corners: bool) -> torch.Tensor:
    """Move pixel coordinates that fall outside [0, size - 1] as the padding mode says.

    ``"zeros"`` leaves them (the sampler then reads 0 there); ``"border"`` clamps them to the
    edge; ``"reflection"`` mirrors them at the border (at the edge pixels' centres with
    ``align_corners=True``, at their outer edges with ``False``) and then clamps.
    """
    check_choice(padding_mode, PADDING_MODES, "padding_mode")
    if padding_mode == "border":
        return _clip(coord, size)
    if padding_mode == "reflection":
        if align_corners:
            coord = _reflect(coord, 0.0, size - 1.0)
        else:
            coord = _reflect(coord, -0.5, size - 0.5)
        return _clip(coord, size)
    return coord


# --------------------------------------------------------------------------- the samplers
def _corner(x: torch.Tensor, y: torch.Tensor, height: int, width: int):
    """Flat indices (into H*W) of integer-valued pixel coords x, y (N, P), and whether each is inside."""
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    index = y.clamp(0, height - 1).long() * width + x.clamp(0, width - 1).long()
    return index, inside


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, C, L), index (N, P) -> values (N, C, P)."""
    n, c, _ = flat.shape
    return flat.gather(2, index.unsqueeze(1).expand(n, c, index.shape[1]))


def _bilinear_forward(input: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, owned: bool = False):
    """Eq. 5 at pixel coordinates x, y (N, H_out, W_out); reads outside the image are 0.

    Returns the output (N, C, P) and what the backward needs: the four corner values
    (N, C, 4, P), the weights wx1, wy1 of column x0 + 1 and row y0 + 1 (N, 1, P), and the
    corners' flat indices into the framed image (N, 1, 4P). See :class:`BilinearSampleFunction`.
    ``owned=True``: x and y are contiguous temporaries of the caller, and are overwritten.
    """
    n, c, height, width = input.shape
    # Clamped into the frame, a point left of column -1 reads two frame columns (value 0,
    # slope 0), exactly as it should; NaN coordinates are sent there too.
    if owned:
        xc = x.view(n, 1, -1).clamp_(-2, width + 1).nan_to_num_(-2.0)
        yc = y.view(n, 1, -1).clamp_(-2, height + 1).nan_to_num_(-2.0)
    else:
        xc = x.reshape(n, 1, -1).clamp(-2, width + 1).nan_to_num_(-2.0)
        yc = y.reshape(n, 1, -1).clamp(-2, height + 1).nan_to_num_(-2.0)
    x0, y0 = torch.floor(xc), torch.floor(yc)
    wx1, wy1 = xc.sub_(x0), yc.sub_(y0)  # (N, 1, P): the weights of column x0 + 1 and row y0 + 1
    stride = width + 5  # a row of the framed image: 2 frame columns left, 3 right
    base = torch.add(x0.long(), y0.long(), alpha=stride)
    offsets = torch.tensor([0, 1, stride, stride + 1], device=input.device) + (2 * stride + 2)
    index = (base + offsets.view(1, 4, 1)).reshape(n, 1, -1)  # (N, 1, 4P): corners y0x0, y0x1, y1x0, y1x1
    framed = torch.nn.functional.pad(input, (2, 3, 2, 3)).reshape(n, c, -1)
    values = framed.gather(2, index.expand(n, c, -1)).reshape(n, c, 4, -1)
    v00, v01, v10, v11 = values.unbind(2)
    # eq. 5 as two linear interpolations along x, then one along y
    out = torch.lerp(torch.lerp(v00, v01, wx1), torch.lerp(v10, v11, wx1), wy1)
    return out, (values, wx1, wy1, index)


def _bilinear_backward(grad_out: torch.Tensor, saved, input_shape, needs_input: bool, needs_xy: bool):
    """Eqs. 6-7: gradients for the input (N, C, H, W) and for x and y (N, P), or None where not needed.

    ``grad_out``: (N, C, P) or any shape with N*C*P elements; ``saved``: from :func:`_bilinear_forward`.
    """
    values, wx1, wy1, index = saved
    n, c, height, width = input_shape
    g = grad_out.reshape(n, c, -1)
    grad_input = grad_x = grad_y = None
    if needs_input:  # eq. 6: each corner receives its bilinear weight
        # g * wy * wx for the four corners, written straight into one (N, C, 4, P) buffer
        parts = torch.empty(n, c, 4, g.shape[-1], dtype=g.dtype, device=g.device)
        torch.mul(g, wy1, out=parts[:, :, 2])  # row y0 + 1, before the split along x
        torch.sub(g, parts[:, :, 2], out=parts[:, :, 0])  # row y0
        torch.mul(parts[:, :, 0], wx1, out=parts[:, :, 1])
        parts[:, :, 0].sub_(parts[:, :, 1])
        torch.mul(parts[:, :, 2], wx1, out=parts[:, :, 3])
        parts[:, :, 2].sub_(parts[:, :, 3])
        framed = torch.zeros(n, c, (height + 5) * (width + 5), dtype=g.dtype, device=g.device)
        framed.scatter_add_(2, index.expand(n, c, -1), parts.reshape(n, c, -1))
        grad_input = framed.reshape(n, c, height + 5, width + 5)[:, :, 2 : height + 2, 2 : width + 2]
    if needs_xy:  # eq. 7: the slope along x, interpolated along y (and the other way round)
        v00, v01, v10, v11 = values.unbind(2)
        dv_dx = torch.lerp(v01 - v00, v11 - v10, wy1).mul_(g)
        dv_dy = torch.lerp(v10 - v00, v11 - v01, wx1).mul_(g)
        grad_x = dv_dx.reshape(n, -1) if c == 1 else dv_dx.sum(1)
        grad_y = dv_dy.reshape(n, -1) if c == 1 else dv_dy.sum(1)
    return grad_input, grad_x, grad_y


class BilinearSampleFunction(torch.autograd.Function):
    """Bilinear sampling at pixel coordinates, with the paper's hand-derived gradients.

    Forward (eq. 5): V = sum_nm U_nm max(0, 1 - |x - m|) max(0, 1 - |y - n|); out-of-image
    pixels count as 0. Backward (eqs. 6-7)::

        dV/dU_nm = max(0, 1 - |x - m|) max(0, 1 - |y - n|)
        dV/dx    = sum_nm U_nm max(0, 1 - |y - n|) * (+1 if m > x else -1), over |m - x| < 1

    At the kinks (x or y exactly an integer) any value between the one-sided slopes is a valid
    sub-gradient; like torch we take the right-hand one (the floor-based split of the weights).

    How it is computed: the image gets a frame of zeros (2 pixels left and top, 3 right and
    bottom) and the coordinates are clamped into it, so every corner can be read with a single
    ``gather`` and no masks (a point clamped into the frame reads only zeros, so its value and
    slope are 0, as they should be); the backward is one ``scatter_add_`` into the framed image.

    Inputs: input (N, C, H, W); x, y (N, H_out, W_out) pixel coordinates.
    Output: (N, C, H_out, W_out).
    """

    @staticmethod
    def forward(ctx, input, x, y):
        if is_blocked():
            raise RuntimeError("stnlib.sampling.BilinearSampleFunction is not available while an exercise is checked")
        out, saved = _bilinear_forward(input, x, y)
        ctx.save_for_backward(*saved)
        ctx.input_shape = input.shape
        return out.reshape(input.shape[0], input.shape[1], *x.shape[1:])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        needs = ctx.needs_input_grad
        grad_input, grad_x, grad_y = _bilinear_backward(
            grad_out, ctx.saved_tensors, ctx.input_shape, needs[0], needs[1] or needs[2]
        )
        shape = grad_out.shape[:1] + grad_out.shape[2:]
        if grad_x is not None:
            grad_x, grad_y = grad_x.reshape(shape), grad_y.reshape(shape)
        return grad_input, grad_x, grad_y


class _BilinearZerosGridSample(torch.autograd.Function):
    """``grid_sample(input, grid, "bilinear", "zeros", align_corners)`` as one autograd node.

    The same maths as :class:`BilinearSampleFunction`, with the unnormalisation of the grid done
    inside (without autograd) and its derivative, a constant (W/2 or (W-1)/2 for x), applied in
    the backward: the common case of a spatial transformer then makes fewer passes over memory.

    Inputs: input (N, C, H, W); grid (N, H_out, W_out, 2). Output: (N, C, H_out, W_out).
    """

    @staticmethod
    def forward(ctx, input, grid, align_corners):
        if is_blocked():
            raise RuntimeError("stnlib.sampling.grid_sample is not available while an exercise is checked")
        height, width = input.shape[-2:]
        x, y = unnormalise(grid[..., 0], width, align_corners), unnormalise(grid[..., 1], height, align_corners)
        out, saved = _bilinear_forward(input, x, y, owned=True)
        ctx.save_for_backward(*saved)
        ctx.input_shape = input.shape
        ctx.scale = ((width - 1) / 2, (height - 1) / 2) if align_corners else (width / 2, height / 2)
        return out.reshape(input.shape[0], input.shape[1], *grid.shape[1:3])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        needs = ctx.needs_input_grad
        grad_input, grad_x, grad_y = _bilinear_backward(
            grad_out, ctx.saved_tensors, ctx.input_shape, needs[0], needs[1]
        )
        grad_grid = None
        if needs[1]:  # d x_pix / d x = scale: written straight into the (x, y) pairs of the grid's layout
            grad_grid = torch.empty(*grad_x.shape, 2, dtype=grad_x.dtype, device=grad_x.device)
            torch.mul(grad_x, ctx.scale[0], out=grad_grid[..., 0])
            torch.mul(grad_y, ctx.scale[1], out=grad_grid[..., 1])
            grad_grid = grad_grid.reshape(*grad_out.shape[:1], *grad_out.shape[2:], 2)
        return grad_input, grad_grid, None


@reference
def bilinear_sample_pixels(input: torch.Tensor, x_pix: torch.Tensor, y_pix: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at pixel coordinates; reads outside the image are 0.

    Args:
        input: (N, C, H, W) float.
        x_pix, y_pix: (N, H_out, W_out) pixel coordinates (x = column, y = row).

    Returns:
        (N, C, H_out, W_out). Differentiable in ``input``, ``x_pix`` and ``y_pix``.
    """
    return BilinearSampleFunction.apply(input, x_pix, y_pix)


@reference
def nearest_sample_pixels(input: torch.Tensor, x_pix: torch.Tensor, y_pix: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour sampling at pixel coordinates (ties round half to even, as torch); outside is 0.

    Args:
        input: (N, C, H, W) float.
        x_pix, y_pix: (N, H_out, W_out) pixel coordinates.

    Returns:
        (N, C, H_out, W_out). Differentiable in ``input`` only: rounding has zero gradient.
    """
    n, c, height, width = input.shape
    xr = torch.round(x_pix.detach()).reshape(n, -1)
    yr = torch.round(y_pix.detach()).reshape(n, -1)
    index, inside = _corner(xr, yr, height, width)
    values = _gather(input.reshape(n, c, height * width), index) * inside.unsqueeze(1).to(input.dtype)
    return values.reshape(n, c, *x_pix.shape[1:])


@reference
def grid_sample(
    input: torch.Tensor,
    grid: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """Sample ``input`` at the points of ``grid``, as ``torch.nn.functional.grid_sample`` (4-D case).

    Args:
        input: (N, C, H_in, W_in) float.
        grid: (N, H_out, W_out, 2) normalised (x, y) points, same dtype as ``input``.
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: where the normalised -1/+1 lie (see the module docstring).

    Returns:
        (N, C, H_out, W_out). Bilinear output is differentiable in ``input`` and ``grid``.

    Example:
        >>> img = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> centre = torch.zeros(1, 1, 1, 2)  # the point (0, 0): the middle of the image
        >>> grid_sample(img, centre, align_corners=False)
        tensor([[[[1.5000]]]])
    """
    check_floating(input, "input")
    check_shape(input, "N,C,H,W", name="input")
    check_floating(grid, "grid")
    check_shape(grid, "N,H_out,W_out,2", name="grid")
    check_choice(mode, MODES, "mode")
    check_choice(padding_mode, PADDING_MODES, "padding_mode")
    if grid.shape[0] != input.shape[0]:
        raise ValueError(
            f"grid must have the same batch size as input ({input.shape[0]}); got grid of shape {tuple(grid.shape)}"
        )
    if grid.dtype != input.dtype:
        raise ValueError(f"grid must have the same dtype as input ({input.dtype}); got {grid.dtype}")
    if mode == "bilinear" and padding_mode == "zeros":  # the spatial transformer's case, in one node
        return _BilinearZerosGridSample.apply(input, grid, align_corners)
    height, width = input.shape[-2:]
    # One copy gives contiguous x and y planes, which every later step reads faster than
    # the interleaved (x, y) pairs of the grid.
    grid_x, grid_y = grid.permute(3, 0, 1, 2).contiguous()
    x = apply_padding(unnormalise(grid_x, width, align_corners), width, padding_mode, align_corners)
    y = apply_padding(unnormalise(grid_y, height, align_corners), height, padding_mode, align_corners)
    if mode == "nearest":
        return nearest_sample_pixels(input, x, y)
    return BilinearSampleFunction.apply(input, x, y)


# --------------------------------------------------------------------------- both at once
@reference
def warp(
    image: torch.Tensor,
    theta: torch.Tensor,
    size=None,
    *,
    align_corners: bool = False,
    padding_mode: str = "zeros",
    mode: str = "bilinear",
    sampler: str = "torch",
) -> torch.Tensor:
    """Warp ``image`` with ``theta``: the grid generator, then the sampler (the notebooks' one-liner).

    Convention: theta is ``src_norm_trans_dst_norm`` (each output pixel reads the input at
    theta @ (x_t, y_t, 1)), so a theta that rotates coordinates by +phi shows the image turned by -phi.

    Args:
        image: (H, W) or (N, C, H, W) float.
        theta: (2, 3) or (N, 2, 3) float (a (2, 3) theta serves a (H, W) image or a batch of one).
        size: (H_out, W_out) of the output; default the input's (H, W).
        align_corners, padding_mode, mode: as for ``grid_sample``.
        sampler: ``"torch"`` (``torch.nn.functional``) or ``"stnlib"`` (this module's hand-built
            ``affine_grid`` and ``grid_sample``, differentiable in theta as well).

    Returns:
        (H_out, W_out) for a (H, W) image, else (N, C, H_out, W_out).

    Example:
        >>> image = torch.arange(6.0).reshape(2, 3)
        >>> flip_x = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # each output pixel reads at -x
        >>> warp(image, flip_x)
        tensor([[2., 1., 0.],
                [5., 4., 3.]])
    """
    check_floating(image, "image")
    check_floating(theta, "theta")
    check_choice(sampler, ("torch", "stnlib"), "sampler")
    if image.dim() not in (2, 4):
        raise ValueError(f"image must have shape (H, W) or (N, C, H, W); got {tuple(image.shape)}")
    batch = image if image.dim() == 4 else image[None, None]
    if theta.dim() == 2:
        check_shape(theta, "2,3", name="theta")
        theta = theta.expand(batch.shape[0], 2, 3)
    check_shape(theta, "N,2,3", name="theta")
    if theta.shape[0] != batch.shape[0]:
        raise ValueError(
            f"theta must have one matrix per image ({batch.shape[0]}); got theta of shape {tuple(theta.shape)}"
        )
    height, width = batch.shape[-2:] if size is None else check_size(size, "size", 2)
    out_size = (batch.shape[0], batch.shape[1], height, width)
    if sampler == "torch":
        grid = F.affine_grid(theta.to(batch.dtype), out_size, align_corners=align_corners)
        out = F.grid_sample(batch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    else:
        grid = affine_grid(theta.to(batch.dtype), out_size, align_corners=align_corners)
        out = grid_sample(batch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return out if image.dim() == 4 else out[0, 0]
