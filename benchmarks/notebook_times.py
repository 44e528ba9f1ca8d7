"""Benchmark: how long the training notebooks take on their first "Run all", by torch thread count and load.

Each run executes an instructor notebook (``solutions/``, the exercises solved) as a learner's first
run would: full mode (``STN_FAST`` unset, unless ``--fast``), in a fresh, empty ``STN_ARTIFACTS_DIR``
(so every model is trained, none loaded), with ``STN_THREADS`` set to the thread count under test
(the notebooks pass it to ``torch.set_num_threads``, see ``stnlib.config.THREADS``). ``--busy N``
starts N processes that spin on the CPU for the whole run, to emulate a machine that is doing other
work (a laptop, or a JupyterHub server shared by several students). The runs are interleaved
notebook by notebook (every thread count of one notebook, then the next), and the script prints the
wall times side by side, the ratio to the first thread count, and the 1-minute load average before
and after each run::

    python benchmarks/notebook_times.py                                  # 05, 06, 07 with 1 and 2 threads
    python benchmarks/notebook_times.py --busy 4                         # the same with 4 busy processes
    python benchmarks/notebook_times.py --notebooks 06 --threads 1 2 --busy 4
    python benchmarks/notebook_times.py --notebooks 07 --fast --threads 1  # a quick smoke run

Timings need a machine that is otherwise idle (apart from ``--busy``): the script warns when the load
average was already above what it started itself. Results (with the machine and the load averages)
go to ``--out`` when given, the executed notebooks (the numbers each run printed) to ``--save``;
nothing is written by default.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
DEFAULT_NOTEBOOKS = ("05", "06", "07")


def notebook_path(name: str) -> Path:
    """``"06"`` (or ``06_experiments``, or a path to a notebook) -> the instructor notebook's path."""
    path = Path(name)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise FileNotFoundError(f"notebook {name!r} does not exist")
        return path.resolve()
    found = sorted(SOLUTIONS.glob(f"{name}*/*.ipynb"))
    if len(found) != 1:
        raise ValueError(f"--notebooks: {name!r} names {len(found)} notebooks in solutions/; give e.g. 05, 06 or 07")
    return found[0]


def _spin() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


class Busy:
    """``n`` processes that keep a CPU busy each while the ``with`` block runs (stopped even when it fails)."""

    def __init__(self, n: int):
        self.n = n
        self.processes: list[multiprocessing.Process] = []

    def __enter__(self) -> Busy:
        for _ in range(self.n):
            process = multiprocessing.Process(target=_spin, daemon=True)
            process.start()
            self.processes.append(process)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=10)
        self.processes = []


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run_notebook(path: Path, threads: int, *, fast: bool, timeout: float, save: Path | None = None) -> dict:
    """Execute ``path`` once, first-run style, with ``threads`` torch threads; its wall time and load averages.

    With ``save``, the executed notebook (its outputs: the numbers the run printed) is written into that folder
    as ``<name>-<threads>thr.ipynb``, also when a cell failed.
    """
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="stn-notebook-times-") as artifacts:
        env = {"STN_ARTIFACTS_DIR": artifacts, "STN_THREADS": str(threads)}
        saved = {key: os.environ.get(key) for key in ("STN_ARTIFACTS_DIR", "STN_THREADS", "STN_FAST")}
        os.environ.update(env)
        if fast:
            os.environ["STN_FAST"] = "1"
        else:
            os.environ.pop("STN_FAST", None)
        load_before = _load()
        start = time.perf_counter()
        try:
            client = NotebookClient(
                nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
            )
            client.execute()
        finally:
            wall = time.perf_counter() - start
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, save / f"{path.stem}-{threads}thr.ipynb")
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {
        "notebook": path.stem,
        "threads": threads,
        "mode": "fast" if fast else "full",
        "wall_time_s": round(wall, 1),
        "load_before": load_before,
        "load_after": _load(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", default=list(DEFAULT_NOTEBOOKS), help="05, 06, 07 or paths")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--busy", type=int, default=0, help="busy processes to start for the runs (default 0)")
    parser.add_argument("--fast", action="store_true", help="fast mode (STN_FAST=1) instead of the full mode")
    parser.add_argument("--timeout", type=float, default=3600, help="per-cell timeout in seconds")
    parser.add_argument("--out", help="write the results JSON here")
    parser.add_argument("--save", help="write the executed notebooks (with their outputs) into this folder")
    args = parser.parse_args(argv)
    if any(t < 1 for t in args.threads) or args.busy < 0:
        parser.error("--threads must be positive and --busy at least 0")
    paths = [notebook_path(name) for name in args.notebooks]
    machine = machine_info()
    print(
        f"{machine['cpus']} CPUs, load average {machine['load_before']:.2f} before; "
        f"{args.busy} busy processes added; {'fast' if args.fast else 'full'} mode, first run (no checkpoints)",
        flush=True,
    )
    if machine["load_before"] is not None and machine["load_before"] > 0.5:
        print("warning: the machine is not idle; the times include the other jobs' load", flush=True)
    start = time.perf_counter()
    rows = []
    with Busy(args.busy):
        for path in paths:
            for threads in args.threads:
                save = Path(args.save) if args.save else None
                row = run_notebook(path, threads, fast=args.fast, timeout=args.timeout, save=save)
                rows.append(row)
                print(
                    f"  {row['notebook']}, {threads} thread(s): {row['wall_time_s']:.0f} s "
                    f"(load {row['load_before']:.2f} -> {row['load_after']:.2f})",
                    flush=True,
                )
    first = args.threads[0]
    print(f"\nwall time (s), {args.busy} busy processes" + "".join(f"{f'{t} thr':>10}" for t in args.threads), end="")
    print("".join(f"{f'{t}/{first}':>9}" for t in args.threads[1:]))
    for path in paths:
        times = {r["threads"]: r["wall_time_s"] for r in rows if r["notebook"] == path.stem}
        line = f"{path.stem:<{len('wall time (s), ') + len(str(args.busy)) + len(' busy processes')}}"
        line += "".join(f"{times[t]:10.0f}" for t in args.threads)
        line += "".join(f"{times[t] / times[first]:9.2f}" for t in args.threads[1:])
        print(line)
    result = {
        "benchmark": "notebook_times",
        "command": "python benchmarks/notebook_times.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"threads": args.threads, "busy": args.busy, "mode": "fast" if args.fast else "full"},
        "machine": machine,
        "total_time_s": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    if args.out:
        write_results(Path(args.out), result)
    return result


if __name__ == "__main__":
    main()
