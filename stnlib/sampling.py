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

Edge cases, as torch (checked against it in tests/test_sampling.py and tests/test_sampling_upstream.py):
    - An empty batch (N = 0), no channels (C = 0) or an empty grid (H_out or W_out = 0) gives an
      empty result, and zero gradients of the inputs' shapes; an empty image (H_in or W_in = 0)
      is refused with a ``ValueError``: there is nothing to sample.
    - The grid may have any memory layout (a transposed view, a permuted (N, 2, H, W) flow field).
    - Non-finite grid points: ``"border"`` sends +-inf to the nearer edge; ``"border"`` and
      ``"reflection"`` send NaN (and ``"reflection"`` +-inf) to pixel 0, as torch's kernel does.
      With ``"zeros"`` such a point reads 0 and passes no gradient, in both modes (torch's nearest
      mode does the same; its bilinear kernel gives NaN there on the CPU).
    - Gradients: bilinear sampling is differentiable in input and grid, twice as well
      (``create_graph=True``, as in a gradient penalty); nearest sampling gives the grid a zero
      gradient. ``torch.func.vmap`` (per-sample gradients) and gradcheck's batched gradients work.
"""

from __future__ import annotations

import math

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
    """Clamp to [0, size - 1]; NaN becomes 0, as in torch's kernel. The gradient is 1 strictly inside, else 0 (as torch)."""
    inside = (coord > 0) & (coord < size - 1)
    return torch.where(inside, coord, coord.detach().clamp(0, size - 1).nan_to_num(0.0))


def _reflect(coord: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Reflect coordinates into [low, high] by mirroring at both ends (any number of times); +-inf and NaN give NaN."""
    span = high - low
    if span <= 0:  # a one-pixel axis with align_corners=True: every point reflects to 0, with gradient 0
        return coord * 0  # (zeros_like would cut the grid out of the graph, and backward() would fail)
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
    ``align_corners=True``, at their outer edges with ``False``) and then clamps. As in torch's
    kernel, ``"border"`` sends +-inf to the nearer edge, and both send NaN (and, for
    ``"reflection"``, +-inf) to 0.

    Args:
        coord: pixel coordinates along one axis, any shape.
        size: the number of pixels along that axis.

    Returns:
        The padded coordinates, same shape as ``coord``.
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


# --------------------------------------------------------------------------- argument checks
def _check_image(input: torch.Tensor) -> None:
    """``input`` must be (N, C, H, W) float with H, W >= 1: there is nothing to sample in an empty image."""
    check_floating(input, "input")
    check_shape(input, "N,C,H,W", name="input")
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(
            f"input must have non-empty spatial dimensions (H_in >= 1 and W_in >= 1); got shape {tuple(input.shape)}"
        )


def _check_pixels(input: torch.Tensor, x_pix: torch.Tensor, y_pix: torch.Tensor) -> None:
    """Checks for the pixel-coordinate samplers: an image, and two (N, H_out, W_out) coordinate tensors like it."""
    _check_image(input)
    for coord, name in ((x_pix, "x_pix"), (y_pix, "y_pix")):
        check_floating(coord, name)
        check_shape(coord, "N,H_out,W_out", name=name)
        if coord.shape[0] != input.shape[0] or coord.dtype != input.dtype:
            raise ValueError(
                f"{name} must have the batch size ({input.shape[0]}) and dtype ({input.dtype}) of input; "
                f"got shape {tuple(coord.shape)}, dtype {coord.dtype}"
            )
    if x_pix.shape != y_pix.shape:
        raise ValueError(f"x_pix and y_pix must have the same shape; got {tuple(x_pix.shape)} and {tuple(y_pix.shape)}")


# --------------------------------------------------------------------------- the samplers
# The autograd nodes below (BilinearSampleFunction, _BilinearZerosGridSample, _NearestSample) follow
# the conventions that torch.func needs: forward without ctx, setup_context, and generate_vmap_rule,
# so vmap can batch them (per-sample gradients, gradcheck's batched gradients). What the backward
# needs from the forward is returned as extra, non-differentiable outputs (torch.func's way to save
# intermediates); the public functions return only the sampled image. The backwards write only
# into tensors they make from the incoming gradient (no ``out=``, nothing written into what the
# forward saved), so that vmap can batch them and autograd can differentiate them: with
# ``create_graph=True`` (a gradient penalty, double backward) each backward first recomputes what it
# needs from its saved inputs with autograd on, and the gradient it returns is then differentiable.


def _bilinear_forward(input: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Eq. 5 at pixel coordinates x, y (N, ...) of any memory layout; reads outside the image are 0.

    Returns the output (N, C, P), P the number of points, and what the backward needs: the
    values of the four corners v00, v01, v10, v11 (N, C, P each; v01 is column x0 + 1, row y0),
    the weights wx1, wy1 of column x0 + 1 and row y0 + 1 (N, 1, P), and the flat index of corner
    (x0, y0) in the framed image (N, 1, P). See :class:`BilinearSampleFunction`.
    """
    n, c, height, width = input.shape
    points = math.prod(x.shape[1:])
    # Clamped into the frame, a point left of column -1 reads two frame columns (value 0,
    # slope 0), exactly as it should; +-inf go to the frame's far sides, NaN to its top left.
    xc = x.reshape(n, 1, points).clamp(-2, width + 1).nan_to_num_(-2.0)
    yc = y.reshape(n, 1, points).clamp(-2, height + 1).nan_to_num_(-2.0)
    x0, y0 = torch.floor(xc), torch.floor(yc)
    wx1, wy1 = xc.sub_(x0), yc.sub_(y0)  # (N, 1, P): the weights of column x0 + 1 and row y0 + 1
    stride = width + 5  # a row of the framed image: 2 frame columns left, 3 right
    base = torch.add(x0.long(), y0.long(), alpha=stride).add_(2 * stride + 2)  # corner (x0, y0), framed
    framed = F.pad(input, (2, 3, 2, 3)).reshape(n, c, (height + 5) * stride)
    # The other three corners are one column right, one row down, or both: the same index into the
    # framed image shifted by 1, stride or stride + 1 reads them.
    index = base.expand(n, c, points)
    length = framed.shape[2] - stride - 1
    v00 = framed[:, :, :length].gather(2, index)
    v01 = framed[:, :, 1 : length + 1].gather(2, index)
    v10 = framed[:, :, stride : stride + length].gather(2, index)
    v11 = framed[:, :, stride + 1 : stride + 1 + length].gather(2, index)
    # eq. 5 as two linear interpolations along x, then one along y
    out = torch.lerp(torch.lerp(v00, v01, wx1), torch.lerp(v10, v11, wx1), wy1)
    return out, (v00, v01, v10, v11, wx1, wy1, base)


def _bilinear_backward(grad_out: torch.Tensor, saved, input_shape, needs_input: bool, needs_xy: bool):
    """Eqs. 6-7: gradients for the input (N, C, H, W) and for x and y (N, P each), or None where not needed.

    ``grad_out``: (N, C, P) or any shape with N*C*P elements; ``saved``: from :func:`_bilinear_forward`.
    """
    v00, v01, v10, v11, wx1, wy1, base = saved
    n, c, height, width = input_shape
    points = base.shape[-1]
    g = grad_out.reshape(n, c, points)
    grad_input = grad_x = grad_y = None
    if needs_input:  # eq. 6: each corner receives its bilinear weight, into the framed image
        stride = width + 5
        g1 = g * wy1  # row y0 + 1
        g0 = g - g1  # row y0
        g01, g11 = g0 * wx1, g1 * wx1  # column x0 + 1
        framed = g.new_zeros(n, c, (height + 5) * stride)
        length = framed.shape[2] - stride - 1
        index = base.expand(n, c, points)
        framed[:, :, :length].scatter_add_(2, index, g0 - g01)
        framed[:, :, 1 : length + 1].scatter_add_(2, index, g01)
        framed[:, :, stride : stride + length].scatter_add_(2, index, g1 - g11)
        framed[:, :, stride + 1 : stride + 1 + length].scatter_add_(2, index, g11)
        grad_input = framed.view(n, c, height + 5, stride)[:, :, 2 : height + 2, 2 : width + 2]
    if needs_xy:  # eq. 7: the slope along x, interpolated along y (and the other way round)
        dv_dx = torch.lerp(v01 - v00, v11 - v10, wy1) * g  # (not mul_: vmap may batch g and not the rest)
        dv_dy = torch.lerp(v10 - v00, v11 - v01, wx1) * g
        grad_x, grad_y = (dv_dx[:, 0], dv_dy[:, 0]) if c == 1 else (dv_dx.sum(1), dv_dy.sum(1))
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
    bottom) and the coordinates are clamped into it, so every corner can be read with a
    ``gather`` and no masks (a point clamped into the frame reads only zeros, so its value and
    slope are 0, as they should be; so does a NaN coordinate); the backward scatters into the
    framed image with ``scatter_add_``. The gradient is differentiable again (double backward, as
    torch's), and ``torch.func.vmap`` can batch forward and backward.

    Use it as ``BilinearSampleFunction.apply(input, x, y)``: input (N, C, H, W) with H, W >= 1;
    x, y (N, H_out, W_out) pixel coordinates, same dtype. Output: (N, C, H_out, W_out).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, x, y):
        if is_blocked():
            raise RuntimeError("stnlib.sampling.BilinearSampleFunction is not available while an exercise is checked")
        out, saved = _bilinear_forward(input, x, y)
        return (out.reshape(input.shape[0], input.shape[1], *x.shape[1:]), *saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, *saved = output
        ctx.mark_non_differentiable(*saved)
        ctx.save_for_backward(*inputs, *saved)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_out, *_):
        if grad_out is None:
            return None, None, None
        input, x, y, *saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: recompute with autograd on (see the comment above)
            saved = _bilinear_forward(input, x, y)[1]
        needs = ctx.needs_input_grad
        grad_input, grad_x, grad_y = _bilinear_backward(grad_out, saved, input.shape, needs[0], needs[1] or needs[2])
        if grad_x is None:
            return grad_input, None, None
        return grad_input, grad_x.reshape(x.shape), grad_y.reshape(y.shape)

    @classmethod
    def apply(cls, input: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sample ``input`` at pixel coordinates x, y: (N, C, H_out, W_out), differentiable in all three."""
        _check_pixels(input, x, y)
        return super().apply(input, x, y)[0]


class _BilinearZerosGridSample(torch.autograd.Function):
    """``grid_sample(input, grid, "bilinear", "zeros", align_corners)`` as one autograd node.

    The same maths as :class:`BilinearSampleFunction`, with the unnormalisation of the grid done
    inside (without autograd) and its derivative, a constant (W/2 or (W-1)/2 for x), applied in
    the backward: the common case of a spatial transformer then makes fewer passes over memory.
    (The first step of the unnormalisation reads the interleaved (x, y) pairs of the grid, of any
    memory layout, and writes contiguous x and y planes; the backward writes the pairs back.)

    Inputs: input (N, C, H, W); grid (N, H_out, W_out, 2). Output: (N, C, H_out, W_out).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, grid, align_corners):
        if is_blocked():
            raise RuntimeError("stnlib.sampling.grid_sample is not available while an exercise is checked")
        height, width = input.shape[2:]
        x, y = unnormalise(grid[..., 0], width, align_corners), unnormalise(grid[..., 1], height, align_corners)
        out, saved = _bilinear_forward(input, x, y)
        return (out.reshape(input.shape[0], input.shape[1], *grid.shape[1:3]), *saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, grid, ctx.align_corners = inputs
        _, *saved = output
        ctx.mark_non_differentiable(*saved)
        ctx.save_for_backward(input, grid, *saved)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_out, *_):
        if grad_out is None:
            return None, None, None
        input, grid, *saved = ctx.saved_tensors
        height, width = input.shape[2:]
        if torch.is_grad_enabled():  # create_graph=True: recompute with autograd on
            x = unnormalise(grid[..., 0], width, ctx.align_corners)
            y = unnormalise(grid[..., 1], height, ctx.align_corners)
            saved = _bilinear_forward(input, x, y)[1]
        needs = ctx.needs_input_grad
        grad_input, grad_x, grad_y = _bilinear_backward(grad_out, saved, input.shape, needs[0], needs[1])
        grad_grid = None
        if needs[1]:  # d x_pix / d x = W/2 (or (W-1)/2), likewise for y: into the (x, y) pairs of the grid
            scale_x, scale_y = ((width - 1) / 2, (height - 1) / 2) if ctx.align_corners else (width / 2, height / 2)
            grad_grid = grad_x.new_empty(grid.shape)
            grad_grid[..., 0] = grad_x.mul_(scale_x).view(grid.shape[:3])
            grad_grid[..., 1] = grad_y.mul_(scale_y).view(grid.shape[:3])
        return grad_input, grad_grid, None


class _NearestSample(torch.autograd.Function):
    """Nearest-neighbour sampling at pixel coordinates x, y (N, ...); points outside the image read 0.

    Rounding is flat, so the gradient for x and y is zero (torch gives the grid zeros too, not
    None). Returns the output (N, C, P) and, for the backward, each point's flat pixel index
    (N, 1, P) and whether it is inside (N, 1, P).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, x, y):
        if is_blocked():
            raise RuntimeError("stnlib.sampling.nearest_sample_pixels is not available while an exercise is checked")
        n, c, height, width = input.shape
        points = math.prod(x.shape[1:])
        xr = torch.round(x).reshape(n, 1, points)  # round half to even, as torch
        yr = torch.round(y).reshape(n, 1, points)
        inside = (xr >= 0) & (xr <= width - 1) & (yr >= 0) & (yr <= height - 1)  # False for NaN too
        # a point outside (NaN, +-inf and huge values included) reads pixel 0, and is then set to 0
        index = torch.add(torch.where(inside, xr, 0).long(), torch.where(inside, yr, 0).long(), alpha=width)
        values = input.reshape(n, c, height * width).gather(2, index.expand(n, c, points))
        return torch.where(inside, values, 0), index, inside

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, x, y = inputs
        _, index, inside = output
        ctx.mark_non_differentiable(index, inside)
        ctx.save_for_backward(index, inside)
        ctx.shapes = input.shape, x.shape, y.shape
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_out, *_):
        if grad_out is None:
            return None, None, None
        index, inside = ctx.saved_tensors
        input_shape, x_shape, y_shape = ctx.shapes
        n, c, height, width = input_shape
        grad_input = grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            g = torch.where(inside, grad_out.reshape(n, c, inside.shape[-1]), 0)
            grad_input = g.new_zeros(n, c, height * width).scatter_add_(2, index.expand_as(g), g)
            grad_input = grad_input.view(input_shape)
        if ctx.needs_input_grad[1]:
            grad_x = grad_out.new_zeros(x_shape)
        if ctx.needs_input_grad[2]:
            grad_y = grad_out.new_zeros(y_shape)
        return grad_input, grad_x, grad_y


@reference
def bilinear_sample_pixels(input: torch.Tensor, x_pix: torch.Tensor, y_pix: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at pixel coordinates; reads outside the image (and at NaN coordinates) are 0.

    Args:
        input: (N, C, H, W) float, H and W at least 1.
        x_pix, y_pix: (N, H_out, W_out) pixel coordinates (x = column, y = row), dtype of ``input``.

    Returns:
        (N, C, H_out, W_out). Differentiable in ``input``, ``x_pix`` and ``y_pix`` (twice, too).
    """
    return BilinearSampleFunction.apply(input, x_pix, y_pix)


@reference
def nearest_sample_pixels(input: torch.Tensor, x_pix: torch.Tensor, y_pix: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour sampling at pixel coordinates (ties round half to even, as torch); outside is 0.

    Args:
        input: (N, C, H, W) float, H and W at least 1.
        x_pix, y_pix: (N, H_out, W_out) pixel coordinates, dtype of ``input``. NaN and +-inf read 0.

    Returns:
        (N, C, H_out, W_out). Differentiable in ``input``; the gradient for ``x_pix`` and ``y_pix``
        is zero (rounding is flat), as torch gives for the grid.
    """
    _check_pixels(input, x_pix, y_pix)
    out = _NearestSample.apply(input, x_pix, y_pix)[0]
    return out.reshape(input.shape[0], input.shape[1], *x_pix.shape[1:])


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
        input: (N, C, H_in, W_in) float, H_in and W_in at least 1 (N and C may be 0).
        grid: (N, H_out, W_out, 2) normalised (x, y) points, same dtype as ``input``, any memory
            layout (a transposed view, a permuted (N, 2, H, W) flow field).
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: where the normalised -1/+1 lie (see the module docstring).

    Returns:
        (N, C, H_out, W_out); empty when N, C, H_out or W_out is 0. Bilinear output is
        differentiable in ``input`` and ``grid``, twice as well; nearest output in ``input``, with a
        zero gradient for ``grid`` (as torch). NaN or +-inf points: see the module docstring.

    Example:
        >>> img = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> centre = torch.zeros(1, 1, 1, 2)  # the point (0, 0): the middle of the image
        >>> grid_sample(img, centre, align_corners=False)
        tensor([[[[1.5000]]]])
    """
    _check_image(input)
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
        return _BilinearZerosGridSample.apply(input, grid, align_corners)[0]
    height, width = input.shape[-2:]
    # (the first step of unnormalise reads the interleaved (x, y) pairs of the grid and writes
    # contiguous x and y planes, which every later step reads faster)
    x = apply_padding(unnormalise(grid[..., 0], width, align_corners), width, padding_mode, align_corners)
    y = apply_padding(unnormalise(grid[..., 1], height, align_corners), height, padding_mode, align_corners)
    if mode == "nearest":
        return _NearestSample.apply(input, x, y)[0].reshape(input.shape[0], input.shape[1], *grid.shape[1:3])
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
