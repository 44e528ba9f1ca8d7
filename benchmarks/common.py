"""What the benchmark scripts share: the options of seeded runs, running them (in parallel), merging
result files, describing the machine and writing the results JSON.

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
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, in separate processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument(
        "--merge", nargs="+", help="merge these result files (rows of later files win) instead of training"
    )
    parser.add_argument("--out", help=f"results JSON (default benchmarks/results/{default_out})")
    return parser


def run_jobs(run_one, jobs, args, report) -> None:
    """Call ``run_one(name, seed, epochs_scale, limit, threads)`` for every (name, seed) of ``jobs``.

    With ``args.jobs`` > 1 the runs go to that many processes (one thread each unless ``--threads``);
    otherwise they run in this process (also when the tests import a script). ``report(name, seed,
    result)`` is called in the order of ``jobs``.
    """
    extra = (args.epochs_scale, args.limit, args.threads)
    if args.jobs <= 1:
        for name, seed in jobs:
            report(name, seed, run_one(name, seed, *extra))
        return
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
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
            "threads": args.threads,
        },
        "machine": machine,
        "total_time_s": time.perf_counter() - start,
        "rows": rows,
    }


def machine_info(**extra) -> dict:
    """torch and Python versions, the number of CPUs and the load average before the runs."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
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
