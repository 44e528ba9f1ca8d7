"""Full-scale runs: does a longer training make the STN undo rotation, or attend to a cluttered digit?

Notebook 06 trains for 8 epochs on a laptop and finds that the transformer centres and scales the
digits but hardly rotates them. This script trains the same models (the default recipe, fresh
distortions every epoch) for many more epochs, on a GPU when there is one, and measures on the
test set how far the learned theta undoes each sample's known rotation:

- ``test_error``: the final test error;
- ``angle_slope``: the least-squares slope of the learned rotation against the ideal one (the
  rotation of ``invert_affine(theta_true)``); 1 means the rotation is undone, 0 ignored;
- ``angle_corr``: their correlation; ``angle_resid_median``: the median of |learned - ideal|
  in degrees, wrapped into [0, 180], after removing the mean offset (the "mean pose" the
  transformer brings every digit to need not be upright);
- ``scale_slope`` and ``shift_slope`` likewise for the scale (sqrt |det|) and the translation
  (None where the distortion does not vary them, as the rotation on TC);
- ``scale_mean`` and ``scale_ideal_mean``: the mean scale of the learned and the ideal theta (below
  1 zooms in; on TC the ideal crop has 28/60).

The measures are those of :mod:`stnlib.undo` (one implementation, which ``python -m stnlib.train``
prints too), stored under the names above. Each run is named ``<distortion>-<model>[-<change>]``; ``--only`` picks some. Results go to
``benchmarks/results/full_scale.json`` (notebook 06 reads it). Runs on the device machine were
started one process per run and merged with ``--merge``::

    python benchmarks/full_scale.py --only r-stn --epochs 600 --out /tmp/r-stn.json
    python benchmarks/full_scale.py --merge /tmp/*.json --out benchmarks/results/full_scale.json
    python benchmarks/full_scale.py --epochs 1 --limit 256 --out /tmp/smoke.json   # seconds, a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

from stnlib import data, train, undo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: name -> (distortion, recipe changes)
RUNS = {
    "r-stn": ("r", {}),
    "r-stn-loclr1": ("r", {"loc_lr_mult": 1.0}),
    "r-cnn": ("r", {"model": "cnn"}),
    "rts-stn": ("rts", {}),
    "rts-cnn": ("rts", {"model": "cnn"}),
    "tc-attention": ("tc", {"transform": "attention"}),
    "tc-frozen": ("tc", {"transform": "attention", "loc_lr_mult": 1e-12}),
    "tc-cnn": ("tc", {"model": "cnn"}),
}


#: stnlib.undo's names -> the names this script's results have always used (notebook 06 reads them).
STORED_NAMES = {
    "rotation_slope": "angle_slope",
    "rotation_corr": "angle_corr",
    "angle_residual_median": "angle_resid_median",
    "scale_mean": "scale_mean",
    "scale_ideal_mean": "scale_ideal_mean",
    "scale_slope": "scale_slope",
    "shift_slope": "shift_slope",
}


def undo_stats(model, test_set, device="cpu") -> dict:
    """:func:`stnlib.undo.undo_stats` under this script's stored names (see the module docstring)."""
    stats = undo.undo_stats(model, test_set, device=device)
    return {stored: stats[key] for key, stored in STORED_NAMES.items()}


def run_one(name: str, epochs: int, limit: int | None, device) -> dict:
    distortion, change = RUNS[name]
    recipe = train.get_recipe("default", epochs=epochs, **change)
    train_set, test_set = data.load_datasets("mnist", distortion, seed=0, limit=limit)
    torch.manual_seed(0)
    model = train.model_for(recipe, train_set)
    start = time.perf_counter()
    metrics = train.train(model, train_set, test_set, recipe, seed=0, device=device, progress=False, verbose=False)
    row = {
        "name": name,
        "distortion": distortion,
        "recipe": dataclasses.asdict(recipe),
        "n_train": len(train_set),
        "n_test": len(test_set),
        "source": train_set.source,
        "steps": epochs * -(-len(train_set) // recipe.batch_size),
        "test_error": metrics["final_test_error"],
        "test_error_per_epoch": [h["test_error"] for h in metrics["history"]],
        "wall_time_s": time.perf_counter() - start,
        "device": str(metrics["device"]),
    }
    if recipe.model == "stn":
        row.update(undo_stats(model, test_set, device))
    print(
        f"{name}: {epochs} epochs ({row['steps']:,} steps) in {row['wall_time_s']:.0f} s, "
        f"test error {100 * row['test_error']:.2f}%"
        + (
            f", angle slope {row['angle_slope']:.2f} (corr {row['angle_corr']:.2f}, "
            f"median residual {row['angle_resid_median']:.1f} deg)"
            if row.get("angle_slope") is not None
            else ""
        )
        + (f", shift slope {row['shift_slope']:.2f}" if row.get("shift_slope") is not None else "")
        + (
            f", mean scale {row['scale_mean']:.2f} (ideal {row['scale_ideal_mean']:.2f})" if "scale_mean" in row else ""
        ),
        flush=True,
    )
    return row


def machine(device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=tuple(RUNS), help="run only these (default: all)")
    parser.add_argument("--epochs", type=int, default=600, help="epochs of every run (default 600)")
    parser.add_argument("--limit", type=int, help="use only the first LIMIT samples of each split (smoke runs)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--merge", nargs="+", help="merge these result files instead of training")
    parser.add_argument("--out", help="results JSON (default benchmarks/results/full_scale.json)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / "full_scale.json"
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        rows = sorted((row for part in parts for row in part["rows"]), key=lambda r: list(RUNS).index(r["name"]))
        result = {**parts[0], "rows": rows, "command": parts[0]["command"] + " (one process per run, merged)"}
    else:
        device = train.resolve_device(args.device)
        rows = [run_one(name, args.epochs, args.limit, device) for name in (args.only or RUNS)]
        result = {
            "benchmark": "full_scale",
            "command": "python benchmarks/full_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine(device),
            "rows": rows,
        }
    return write_results(out, result)


if __name__ == "__main__":
    main()
