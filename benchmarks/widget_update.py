"""How long one slider update of the theta explorer takes on CPU (notebook 04, stnlib.widgets).

One update is what the widget does when a slider moves: theta from the sliders, the sampling
grid and the output with stnlib's hand-built sampler, the picture drawn and encoded as PNG, the
matrix panel. It is timed from Python by setting a slider's value, which runs the same observer
the browser triggers (the time to send the PNG to the browser is not included). The goal is at
most 50 ms per update.

Usage::

    python benchmarks/widget_update.py            # 50 updates per image, with and without the grid
    python benchmarks/widget_update.py -n 200     # more updates
    python benchmarks/widget_update.py --check    # exit 1 if any p95 is over the budget

It prints, for each image and grid setting, the median, 95th percentile and maximum wall-clock
time of one update, the median CPU time of this process for it (the same minus any wait for a
busy core), and the median and p95 of the computation alone (:func:`stnlib.widgets.render`,
without drawing).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from stnlib.widgets import CONTROL_DEFAULTS, ThetaExplorer, render

BUDGET_MS = 50.0


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def slider_values(n: int):
    """``n`` (slider name, value) pairs that sweep every parameter slider through its range."""
    names = list(CONTROL_DEFAULTS)
    out = []
    for i in range(n):
        name = names[i % len(names)]
        default, lo, hi, _step = CONTROL_DEFAULTS[name]
        frac = ((i * 0.37) % 1.0) * 0.8 + 0.1
        out.append((name, lo + (hi - lo) * frac))
    return out


def time_updates(explorer: ThetaExplorer, n: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``n`` slider updates (after 5 not timed, to warm up).

    The CPU time of this process shows the cost of the work itself; the wall-clock time also
    holds waits for a core when the machine is busy (what a learner feels).
    """
    values = slider_values(n + 5)
    wall, cpu = [], []
    for i, (name, value) in enumerate(values):
        t0, c0 = time.perf_counter(), time.process_time()
        explorer.controls[name].value = value
        t1, c1 = time.perf_counter(), time.process_time()
        if i >= 5:
            wall.append((t1 - t0) * 1e3)
            cpu.append((c1 - c0) * 1e3)
    explorer.reset()
    return wall, cpu


def time_compute(explorer: ThetaExplorer, n: int) -> list[float]:
    """Milliseconds of ``n`` calls of :func:`render` alone (theta -> grid and output)."""
    img = explorer.image
    c = explorer.controls
    times = []
    for name, value in slider_values(n):
        c[name].value = value
        theta = explorer.theta
        t0 = time.perf_counter()
        render(img, theta, align_corners=c["align_corners"].value, padding_mode=c["padding_mode"].value)
        times.append((time.perf_counter() - t0) * 1e3)
    explorer.reset()
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="updates timed per setting (default 50)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a p95 exceeds {BUDGET_MS:g} ms")
    args = parser.parse_args(argv)

    explorer = ThetaExplorer()
    explorer.image  # noqa: B018 - load the first image before timing
    print(
        f"theta explorer: one slider update, {args.n} updates per row; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    header = (
        f"{'image':<16} {'grid':<5} {'update median':>14} {'p95':>8} {'max':>8} {'CPU median':>11} "
        f"{'compute median':>15} {'p95':>8}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name in explorer.controls["image"].options:
        explorer.controls["image"].value = name
        explorer.image  # noqa: B018 - loading an image (MNIST: once) is not an update
        for grid in (True, False):
            explorer.controls["show_grid"].value = grid
            upd, cpu = time_updates(explorer, args.n)
            comp = time_compute(explorer, args.n)
            p95 = percentile(upd, 95)
            worst = max(worst, p95)
            print(
                f"{name:<16} {'on' if grid else 'off':<5} {statistics.median(upd):>11.1f} ms {p95:>5.1f} ms "
                f"{max(upd):>5.1f} ms {statistics.median(cpu):>8.1f} ms {statistics.median(comp):>12.1f} ms "
                f"{percentile(comp, 95):>5.1f} ms"
            )
    verdict = "within" if worst <= BUDGET_MS else "OVER"
    print(f"worst p95 {worst:.1f} ms: {verdict} the {BUDGET_MS:g} ms budget")
    return 1 if args.check and worst > BUDGET_MS else 0


if __name__ == "__main__":
    sys.exit(main())
