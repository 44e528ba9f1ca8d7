"""Benchmark: stnlib's hand-built bilinear sampler against torch.nn.functional.grid_sample.

Forward + backward (gradients for input and grid), side by side in one run on the same
inputs, at the course's sizes and at an ImageNet-like size. Prints the time of each and the
ratio stnlib / torch (lower is better; 1.0 means as fast as torch's C++ kernel).

    python benchmarks/sampler.py [--repeats 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from stnlib import sampling

SIZES = [(64, 1, 28, 28), (64, 1, 42, 42), (64, 1, 60, 60), (16, 3, 224, 224)]


def make_inputs(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = size[0]
    image = torch.rand(size, generator=g)
    theta = torch.eye(2, 3) + 0.3 * torch.randn(n, 2, 3, generator=g)
    grid = F.affine_grid(theta, size, align_corners=False)
    return image, grid


def step(fn, image, grid):
    x = image.clone().requires_grad_()
    g = grid.clone().requires_grad_()
    out = fn(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    out.sum().backward()
    return x.grad, g.grad


def median_time(fn, image, grid, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(fn, image, grid)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward, median of {args.repeats}")
    print(f"{'size (N, C, H, W)':<22}{'torch ms':>10}{'stnlib ms':>11}{'ratio':>8}")
    for size in SIZES:
        image, grid = make_inputs(size)
        # correctness first: the same values and gradients (float32 rounding near pixel
        # boundaries moves a few grid gradients by ~1e-5 relative, for torch's kernel as for ours)
        ref, ours = step(F.grid_sample, image, grid), step(sampling.grid_sample, image, grid)
        for a, b in zip(ref, ours):
            torch.testing.assert_close(b, a, atol=1e-2, rtol=1e-3)
        repeats = max(3, args.repeats // 4) if size[-1] > 100 else args.repeats
        for fn in (F.grid_sample, sampling.grid_sample):  # warm-up
            step(fn, image, grid)
        # interleave the two so that drifts in machine load hit both alike
        t_torch, t_ours = [], []
        for _ in range(repeats):
            t_torch.append(median_time(F.grid_sample, image, grid, 1))
            t_ours.append(median_time(sampling.grid_sample, image, grid, 1))
        a, b = statistics.median(t_torch), statistics.median(t_ours)
        print(f"{str(size):<22}{a * 1e3:>10.2f}{b * 1e3:>11.2f}{b / a:>7.2f}x")


if __name__ == "__main__":
    main()
