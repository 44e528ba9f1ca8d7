"""What the benchmark scripts share: the options of seeded runs, running them (in parallel), merging
result files, describing the machine (and its load while a run trains) and writing the results JSON.

The scripts import it as ``from common import ...`` after putting ``benchmarks/`` on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def seeded_parser(description: str, *, only_help: str, default_out: str) -> argparse.ArgumentParser:
    """The options of a script that trains rows for several seeds (``--only --seeds ... --merge --out``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", nargs="+", help=only_help)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of every row (default 0 1 2)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="scale every row's epochs (smoke runs)")
    parser.add_argument("--limit", type=int, help="use only the first LIMIT samples of each split (smoke runs)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cores to fill: runs of T threads go JOBS // T at a time (at least one), in separate processes",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="torch threads per run (default 1); several: every row and seed once with each",
    )
    parser.add_argument(
        "--merge", nargs="+", help="merge these result files (rows of later files win) instead of training"
    )
    parser.add_argument("--out", help=f"results JSON (default benchmarks/results/{default_out})")
    return parser


def thread_counts(args) -> list[int]:
    """The ``--threads`` of ``args`` as a list (a script or a test may pass one int)."""
    threads = args.threads
    return [int(t) for t in threads] if isinstance(threads, (list, tuple)) else [int(threads)]


def run_jobs(run_one, jobs, args, report) -> None:
    """Call ``run_one(name, seed, epochs_scale, limit, threads)`` for every (name, seed) of ``jobs``.

    Once per thread count of ``--threads``, one count after the other. Runs of T threads go
    ``args.jobs // T`` at a time (at least one) to separate processes, so that ``--jobs 2 --threads 1 2``
    fills two cores with two one-thread runs and then with one two-thread run at a time; at one
    at a time they run in this process (also when the tests import a script). ``report(name, seed,
    result)`` is called in the order of ``jobs``.
    """
    for threads in thread_counts(args):
        extra = (args.epochs_scale, args.limit, threads)
        workers = max(1, args.jobs // threads)
        if workers <= 1:
            for name, seed in jobs:
                report(name, seed, run_one(name, seed, *extra))
            continue
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {job: pool.submit(run_one, *job, *extra) for job in jobs}
            for (name, seed), future in futures.items():
                report(name, seed, future.result())


def merge(paths, order) -> dict:
    """Merge result files: the rows of later files win, in the order of the names in ``order``."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    by_name = {row["name"]: row for part in parts for row in part["rows"]}
    return {
        **parts[-1],
        "rows": [by_name[name] for name in order if name in by_name],
        "command": " + ".join(part["command"] for part in parts) + " (merged)",
        "total_time_s": sum(part.get("total_time_s", 0.0) for part in parts),
    }


def merge_runs(paths, order, summarise, key=("seed", "threads")) -> dict:
    """Merge result files run by run: a row's runs from every file, the later of two with the same ``key`` winning.

    For results whose runs of one row come from several commands (one thread, then two). A run
    stored without ``threads`` gets its file's ``settings["threads"]``. ``summarise(name, runs)``
    builds each row again from its merged runs; rows come in the order of the names in ``order``.
    The result keeps the last file's settings and machine and lists every file's command, settings
    and machine under ``"parts"``.
    """
    parts = [json.loads(Path(p).read_text()) for p in paths]
    runs = {}
    for part in parts:
        threads = part.get("settings", {}).get("threads")
        default_threads = threads[0] if isinstance(threads, list) and len(threads) == 1 else threads
        for row in part["rows"]:
            for run in row["runs"]:
                run = {**run}
                run.setdefault("threads", default_threads)
                runs.setdefault(row["name"], {})[tuple(run.get(k) for k in key)] = run
    rows = []
    for name in order:
        if name in runs:
            rows.append(summarise(name, sorted(runs[name].values(), key=lambda r: tuple(r.get(k) or 0 for k in key))))
    return {
        **parts[-1],
        "rows": rows,
        "command": " + ".join(part["command"] for part in parts) + " (merged)",
        "total_time_s": sum(part.get("total_time_s", 0.0) for part in parts),
        "parts": [{key: part.get(key) for key in ("command", "settings", "machine", "total_time_s")} for part in parts],
    }


def seeded_result(benchmark: str, argv, args, *, machine: dict, start: float, rows: list, **settings) -> dict:
    """The results dict of a seeded run: the command, the settings (``args`` and ``settings``), the machine, rows."""
    return {
        "benchmark": benchmark,
        "command": f"python benchmarks/{benchmark}.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {
            **settings,
            "seeds": args.seeds,
            "epochs_scale": args.epochs_scale,
            "limit": args.limit,
            "jobs": args.jobs,
            "threads": thread_counts(args),
        },
        "machine": machine,
        "total_time_s": time.perf_counter() - start,
        "rows": rows,
    }


def load_average() -> float | None:
    """The machine's load average over the last minute (None where the OS does not tell).

    Runs timed at a load above the number of cores share them with other work, and their wall
    times are inflated by about load / cores; the scripts store it beside each run's time.
    """
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine_info(**extra) -> dict:
    """torch and Python versions, the number of CPUs and the load average before the runs."""
    load = load_average()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": load,
        **extra,
    }


def write_results(out: Path, result: dict) -> dict:
    """Write ``result`` as indented JSON to ``out`` (creating its folder) and say where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {out}")
    return result
