"""Benchmark: stnlib's hand-built bilinear sampler against torch.nn.functional.grid_sample.

Forward + backward (gradients for input and grid), side by side in one run on the same
inputs, at the course's sizes and at an ImageNet-like size. Prints the time of each and the
ratio stnlib / torch (lower is better; 1.0 means as fast as torch's C++ kernel): wall-clock
time, what a learner waits for, and CPU time (all threads of this process), which other jobs on
the machine disturb less. The two are interleaved call by call, so that changes in the
machine's load hit both alike; the load average is printed before and after, with a warning
when the machine is busy (the ratios then spread widely; compare runs on an idle machine).

    python benchmarks/sampler.py [--repeats 20] [--threads 2]
    python benchmarks/sampler.py --against 5391e74      # also the sampler of an earlier commit

``--against REV`` loads ``stnlib`` as it was at git revision REV (its own geometry and sampling
modules, under the name ``stnlib_then``) and times its ``grid_sample`` interleaved with the other
two, so that the table also gives the present sampler's time over the earlier one's, measured side
by side in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

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


def sampler_at(rev: str):
    """``stnlib.sampling.grid_sample`` as it was at git revision ``rev`` (the package extracted as ``stnlib_then``)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev, "stnlib"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"--against: git cannot read stnlib at revision {rev!r}: {archive.stderr.decode().strip()}")
    where = Path(tempfile.mkdtemp(prefix="stnlib-then-"))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # (our own repository's files; the "data" filter where this Python has it)
        tar.extractall(where, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (where / "stnlib").rename(where / "stnlib_then")
    sys.path.insert(0, str(where))
    return importlib.import_module("stnlib_then.sampling").grid_sample


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--against", metavar="REV", help="also time the sampler of this git revision")
    args = parser.parse_args(argv)
    samplers = {"torch": F.grid_sample, "stnlib": sampling.grid_sample}
    if args.against:
        samplers["then"] = sampler_at(args.against)
    torch.set_num_threads(args.threads)
    load = load_average()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward, median of {args.repeats}; "
        f"{os.cpu_count()} CPUs, load average {load if load is None else round(load, 2)}"
    )
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy; wall-clock ratios spread widely (CPU-time ratios less)")
    then = f"{args.against} ms" if args.against else ""
    header = f"{'size (N, C, H, W)':<22}{'torch ms':>10}{'stnlib ms':>11}{'ratio':>8}{'CPU ratio':>11}"
    if args.against:
        header += f"{then:>14}{'now/then':>10}{'CPU now/then':>14}"
    print(header)
    for size in SIZES:
        image, grid = make_inputs(size)
        # correctness first: the same values and gradients (float32 rounding near pixel
        # boundaries moves a few grid gradients by ~1e-5 relative, for torch's kernel as for ours)
        ref = step(F.grid_sample, image, grid)
        for fn in list(samplers.values())[1:]:
            for a, b in zip(ref, step(fn, image, grid)):
                torch.testing.assert_close(b, a, atol=1e-2, rtol=1e-3)
        repeats = max(3, args.repeats // 4) if size[-1] > 100 else args.repeats
        for fn in samplers.values():  # warm-up
            step(fn, image, grid)
        # interleave them so that drifts in machine load hit all alike
        times = {name: [] for name in samplers}
        for _ in range(repeats):
            for name, fn in samplers.items():
                times[name].append(timed_step(fn, image, grid))
        wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
        cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
        a, b = wall["torch"], wall["stnlib"]
        line = f"{str(size):<22}{a * 1e3:>10.2f}{b * 1e3:>11.2f}{b / a:>7.2f}x{cpu['stnlib'] / cpu['torch']:>10.2f}x"
        if args.against:
            c = wall["then"]
            line += f"{c * 1e3:>14.2f}{b / c:>9.2f}x{cpu['stnlib'] / cpu['then']:>13.2f}x"
        print(line)
    load = load_average()
    print(f"load average after: {load if load is None else round(load, 2)}")


if __name__ == "__main__":
    main()
