"""Notebook 07's measurements, several seeds each: TPS vs affine on E, a transformer on feature maps, MNIST addition.

Every row trains stnlib's default recipe (8 epochs, the offline 4,000 / 1,000 digits) with one change,
for each seed, and records the test error, the parameter count, the wall time and how far the
transformer undoes the distortion (``stnlib.undo``: slopes 1 = undone, 0 = ignored; for MNIST
addition, which channel each transformer follows). Rows ending in ``-long`` train 60 epochs. The
paper's numbers (Table 1; the appendix for MNIST addition, where the two-transformer model is a 2xST-FCN
and ours a 2xST-CNN) are printed beside ours. The 60-epoch rows (E and addition) ask whether a longer
budget changes the picture. Results go to ``benchmarks/results/beyond_affine.json``;
notebook 07 reads it::

    python benchmarks/beyond_affine.py --jobs 2                       # the 8-epoch rows, seeds 0 1 2 (about 5 min)
    python benchmarks/beyond_affine.py --only addition-cnn-long addition-stn-long addition-st2-long \\
        --seeds 0 1 --jobs 2 --out /tmp/long.json                     # 60-epoch addition rows (about 20 min)
    python benchmarks/beyond_affine.py --only e-cnn-long e-affine-long e-tps-long --jobs 2 --out /tmp/e.json
    python benchmarks/beyond_affine.py --merge benchmarks/results/beyond_affine.json /tmp/long.json /tmp/e.json
    python benchmarks/beyond_affine.py --only e-tps --seeds 0 --epochs-scale 0.1 --limit 256 --out /tmp/s.json
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from stnlib import data, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, merge, run_jobs, seeded_parser, seeded_result, write_results  # noqa: E402

LONG_EPOCHS = 60

#: name -> (task, what, distortion, change of the default recipe, the paper's label, its test error %)
ROWS = {
    "e-cnn": ("E", "CNN (same size)", "e", {"model": "cnn"}, "CNN", 1.4),
    "e-affine": ("E", "ST-CNN, affine", "e", {}, "ST-CNN Aff", 1.2),
    "e-tps": ("E", "ST-CNN, TPS (4x4 control points)", "e", {"transform": "tps"}, "ST-CNN TPS", 1.1),
    "rts-cnn": ("RTS", "CNN (same size)", "rts", {"model": "cnn"}, "CNN", 0.8),
    "rts-stn": ("RTS", "ST-CNN, on the image", "rts", {}, "ST-CNN Aff", 0.5),
    "rts-features": ("RTS", "ST-CNN, on the feature maps", "rts", {"model": "stn-features"}, None, None),
    "addition-cnn": ("addition", "CNN (same size as the ST-CNN)", "addition", {"model": "cnn"}, "CNN", 14.7),
    "addition-stn": ("addition", "ST-CNN, one transformer", "addition", {}, None, None),
    "addition-st2": ("addition", "2xST-CNN, two transformers", "addition", {"model": "st2"}, "2xST-FCN", 5.8),
}
ROWS.update(
    {
        f"{name}-long": (task, what, d, {**change, "epochs": LONG_EPOCHS}, label, paper)
        for name, (task, what, d, change, label, paper) in list(ROWS.items())
        if task in ("E", "addition")
    }
)


def run_one(name: str, seed: int, epochs_scale: float, limit: int | None, threads: int) -> dict:
    """Train one row with one seed (in its own process when ``--jobs`` > 1)."""
    torch.set_num_threads(threads)
    task, what, distortion, change, label, paper = ROWS[name]
    recipe = train.get_recipe("default", **change)
    recipe = dataclasses.replace(recipe, epochs=max(1, round(recipe.epochs * epochs_scale)))
    train_set, test_set = data.load_datasets("mnist", distortion, seed=0, limit=limit)
    torch.manual_seed(seed)
    model = train.model_for(recipe, train_set)
    metrics = train.train(model, train_set, test_set, recipe, seed=seed, device="cpu", progress=False, verbose=False)
    return {
        "seed": seed,
        "test_error": metrics["final_test_error"],
        "undo": metrics["undo"],
        "epochs": recipe.epochs,
        "wall_time_s": metrics["wall_time_s"],
        "parameters": metrics["parameters"],
        "source": train_set.source,
        "n_train": len(train_set),
    }


def _undo_summary(undo: dict | None) -> str:
    """A few words on what the transformer undoes: slopes, or which channel each transformer follows."""
    if not undo:
        return "-"
    if "transformers" in undo:
        return "; ".join(
            f"T{i}->ch{t['channel']} shift {t['shift_slope']:.2f}" for i, t in enumerate(undo["transformers"])
        )
    parts = [(key.split("_")[0], undo.get(key)) for key in ("shift_slope", "scale_slope", "rotation_slope")]
    return ", ".join(f"{what} {value:.2f}" for what, value in parts if value is not None) or "-"


def summarise(name: str, runs: list[dict]) -> dict:
    task, what, distortion, change, label, paper = ROWS[name]
    errors = [r["test_error"] for r in runs]
    return {
        "name": name,
        "task": task,
        "what": what,
        "distortion": distortion,
        "change": change,
        "paper_label": label,
        "paper_error_pct": paper,
        "test_error": statistics.fmean(errors),
        "test_error_min": min(errors),
        "test_error_max": max(errors),
        "wall_time_s": statistics.fmean(r["wall_time_s"] for r in runs),
        "parameters": runs[0]["parameters"],
        "epochs": runs[0]["epochs"],
        "runs": runs,
    }


def print_table(rows: list[dict]) -> None:
    print(f"{'row':22s} {'error % (min..max)':>20s} {'paper':>14s} {'params':>8s} {'time s':>7s}  undo (seed 0)")
    for row in rows:
        error = f"{100 * row['test_error']:.1f} ({100 * row['test_error_min']:.1f}..{100 * row['test_error_max']:.1f})"
        paper = "-" if row["paper_error_pct"] is None else f"{row['paper_label']} {row['paper_error_pct']}"
        print(
            f"{row['name']:22s} {error:>20s} {paper:>14s} {row['parameters']:8,} {row['wall_time_s']:7.0f}  "
            f"{_undo_summary(row['runs'][0]['undo'])}"
        )


def main(argv=None) -> dict:
    parser = seeded_parser(
        __doc__.splitlines()[0],
        only_help="run only these rows (default: every row not ending in -long)",
        default_out="beyond_affine.json",
    )
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / "beyond_affine.json"
    if args.merge:
        result = merge(args.merge, ROWS)
    else:
        chosen = args.only or [name for name in ROWS if not name.endswith("-long")]
        unknown = sorted(set(chosen) - set(ROWS))
        if unknown:
            parser.error(f"--only takes rows of {', '.join(ROWS)}; got {', '.join(unknown)}")
        start, runs, machine = time.perf_counter(), {}, machine_info()

        def report(name, seed, r):
            runs.setdefault(name, []).append(r)
            print(f"{name} seed {seed}: error {100 * r['test_error']:.1f}%, {r['wall_time_s']:.0f} s", flush=True)

        run_jobs(run_one, [(name, seed) for name in chosen for seed in args.seeds], args, report)
        rows = [summarise(name, runs[name]) for name in chosen]
        result = seeded_result("beyond_affine", argv, args, machine=machine, start=start, rows=rows)
    print_table(result["rows"])
    return write_results(out, result)


if __name__ == "__main__":
    main()
