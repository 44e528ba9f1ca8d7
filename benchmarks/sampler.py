"""Benchmark: stnlib's hand-built bilinear sampler against torch.nn.functional.grid_sample.

Forward + backward (gradients for input and grid), side by side in one run on the same
inputs, at the course's sizes and at an ImageNet-like size. Prints the time of each and the
ratio stnlib / torch (lower is better; 1.0 means as fast as torch's C++ kernel): wall-clock
time, what a learner waits for, and CPU time (all threads of this process), which other jobs on
the machine disturb less. The two are interleaved call by call, so that changes in the
machine's load hit both alike; the load average is printed before and after, with a warning
when the machine is busy (the ratios then spread widely; compare runs on an idle machine).

    python benchmarks/sampler.py [--repeats 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
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


def timed_step(fn, image, grid):
    """Wall-clock and CPU seconds of one forward + backward."""
    wall, cpu = time.perf_counter(), time.process_time()
    step(fn, image, grid)
    return time.perf_counter() - wall, time.process_time() - cpu


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = load_average()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward, median of {args.repeats}; "
        f"{os.cpu_count()} CPUs, load average {load if load is None else round(load, 2)}"
    )
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy; wall-clock ratios spread widely (CPU-time ratios less)")
    print(f"{'size (N, C, H, W)':<22}{'torch ms':>10}{'stnlib ms':>11}{'ratio':>8}{'CPU ratio':>11}")
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
        times = {"torch": [], "stnlib": []}
        for _ in range(repeats):
            times["torch"].append(timed_step(F.grid_sample, image, grid))
            times["stnlib"].append(timed_step(sampling.grid_sample, image, grid))
        wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
        cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
        a, b = wall["torch"], wall["stnlib"]
        print(f"{str(size):<22}{a * 1e3:>10.2f}{b * 1e3:>11.2f}{b / a:>7.2f}x{cpu['stnlib'] / cpu['torch']:>10.2f}x")
    load = load_average()
    print(f"load average after: {load if load is None else round(load, 2)}")


if __name__ == "__main__":
    main()
