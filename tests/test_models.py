"""Tests of stnlib.models (and the grids of stnlib.warps they use)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stnlib import models
from stnlib.data import NORMALISATION
from stnlib.warps import projective_grid, tps_control_points, tps_grid

torch.set_num_threads(1)


def _digits(n=4, size=28, seed=0):
    """Blob-like images in [0, 1] with a black border, like digits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    m = size // 4
    x[:, :, m:-m, m:-m] = torch.rand(n, 1, size - 2 * m, size - 2 * m, generator=g)
    return x


def _set_theta(model, params):
    """Make the (untrained) localisation network output ``params`` for every input."""
    with torch.no_grad():
        model.fc_loc[-1].bias.copy_(torch.tensor(params))


class TestIdentityInit:
    @pytest.mark.parametrize("transform", models.TRANSFORMS)
    def test_output_equals_input(self, transform):
        torch.manual_seed(0)
        model = models.STNClassifier((28, 28), transform=transform, out_size=(28, 28))
        x = _digits()
        theta = model.theta(x)
        if transform == "tps":  # zero offsets of the 16 control points
            assert theta.shape == (4, 16, 2) and torch.count_nonzero(theta) == 0
        else:
            eye = torch.eye(3)[:2] if transform != "projective" else torch.eye(3)
            torch.testing.assert_close(theta, eye.expand_as(theta), atol=0, rtol=0)
        torch.testing.assert_close(model.affine_theta(x), torch.eye(2, 3).expand(4, 2, 3), atol=1e-6, rtol=0)
        torch.testing.assert_close(model.stn(x), x, atol=1e-5, rtol=0)  # up to sampling round-off

    def test_last_layer_is_zero_with_identity_bias(self):
        model = models.STNClassifier((42, 42))
        assert torch.count_nonzero(model.fc_loc[-1].weight) == 0
        assert model.fc_loc[-1].bias.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def test_smaller_output_shows_whole_input(self):
        """42x42 -> 28x28 at the identity: the same as resampling the whole canvas."""
        model = models.STNClassifier((42, 42), out_size=(28, 28))
        x = _digits(size=42)
        grid = F.affine_grid(torch.eye(2, 3).expand(4, 2, 3), (4, 1, 28, 28), align_corners=False)
        expected = F.grid_sample(x, grid, align_corners=False)
        torch.testing.assert_close(model.stn(x), expected, atol=1e-5, rtol=0)

    def test_tutorial_net_identity(self):
        model = models.TutorialNet((28, 28))
        x = _digits()
        torch.testing.assert_close(model.stn(x), x, atol=1e-5, rtol=0)


class TestSamplerSwitch:
    @pytest.mark.parametrize("transform", ["affine", "attention", "projective"])
    def test_stnlib_sampler_matches_torch(self, transform):
        torch.manual_seed(1)
        a = models.STNClassifier((42, 42), transform=transform, sampler="torch")
        b = models.STNClassifier((42, 42), transform=transform, sampler="stnlib")
        with torch.no_grad():  # move theta off the identity so the sampler interpolates
            a.fc_loc[-1].weight.normal_(0, 0.05)
            a.fc_loc[-1].bias.add_(0.1 * torch.randn_like(a.fc_loc[-1].bias))
        b.load_state_dict(a.state_dict())
        x, y = _digits(size=42), torch.tensor([1, 2, 3, 4])
        out_a, out_b = a(x), b(x)
        torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-4)
        F.cross_entropy(out_a, y).backward()
        F.cross_entropy(out_b, y).backward()
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-3, msg=lambda m, name=name: f"{name}: {m}")
        assert a.fc_loc[-1].weight.grad.abs().sum() > 0  # the gradient reaches theta

    def test_stnlib_sampler_is_the_hand_built_one(self, monkeypatch):
        model = models.TutorialNet((28, 28), sampler="stnlib")

        def forbidden(*args, **kwargs):
            raise AssertionError("sampler='stnlib' must not call torch's affine_grid or grid_sample")

        monkeypatch.setattr(F, "grid_sample", forbidden)
        monkeypatch.setattr(F, "affine_grid", forbidden)
        model(_digits())


class TestTransforms:
    def test_attention_theta(self):
        theta = models.params_to_theta(torch.tensor([[0.5, 0.1, -0.2]]), "attention")
        torch.testing.assert_close(theta, torch.tensor([[[0.5, 0.0, 0.1], [0.0, 0.5, -0.2]]]), atol=0, rtol=0)

    def test_projective_with_affine_last_row_is_affine(self):
        theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.1, 1.1, 0.0]]])
        homography = torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]])], 1)
        for align in (False, True):
            torch.testing.assert_close(
                projective_grid(homography, (1, 1, 5, 7), align_corners=align),
                F.affine_grid(theta, (1, 1, 5, 7), align_corners=align),
            )

    def test_zoom_by_half(self):
        """Attention with s = 0.5 shows the central half of the input, twice as large."""
        model = models.STNClassifier((28, 28), transform="attention", out_size=(28, 28))
        _set_theta(model, [0.5, 0.0, 0.0])
        x = torch.zeros(1, 1, 28, 28)
        x[..., 7:21, 7:21] = 1.0  # a 14x14 square in the middle fills the output
        assert model.stn(x)[..., 1:-1, 1:-1].min() > 0.99

    def test_bad_arguments(self):
        with pytest.raises(
            ValueError,
            match="transform must be one of 'affine', 'similarity', 'attention', 'projective', 'tps'; got 'spline'",
        ):
            models.STNClassifier((28, 28), transform="spline")
        with pytest.raises(ValueError, match="sampler must be one of"):
            models.STNClassifier((28, 28), sampler="cuda")
        with pytest.raises(ValueError, match=r"params must have shape \(N, 3\); got \(1, 6\)"):
            models.params_to_theta(torch.zeros(1, 6), "attention")
        with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 42, 42\); got \(2, 1, 28, 28\)"):
            models.STNClassifier((42, 42)).theta(torch.zeros(2, 1, 28, 28))
        with pytest.raises(ValueError, match="in_size is too small"):
            models.localization_net((20, 20))


class TestNormalisationPlacement:
    """pytorch/tutorials issue #1117: with normalisation before the transformer, zero padding inserts a bright frame."""

    def test_after_pads_with_true_background(self):
        model = models.STNClassifier((28, 28), normalise="after")
        _set_theta(model, [2.0, 0.0, 0.0, 0.0, 2.0, 0.0])  # zoom out: the border reads outside
        out = model.stn(_digits())
        assert out[..., 0, :].abs().max() == 0  # background stays 0
        z = model._warp(_digits())  # what the classifier sees: the normalised background everywhere
        torch.testing.assert_close(z[..., 0, 0], torch.full_like(z[..., 0, 0], -0.1307 / 0.3081))

    def test_before_with_zeros_makes_a_frame(self):
        model = models.STNClassifier((28, 28), normalise="before", padding_mode="zeros")
        _set_theta(model, [2.0, 0.0, 0.0, 0.0, 2.0, 0.0])
        z = model._warp(_digits())
        assert z[..., 0, 0].min() == 0  # 0 is brighter than the normalised background -0.42
        assert torch.allclose(model.stn(_digits())[..., 0, 0], torch.tensor(0.1307))

    def test_before_with_border_has_no_frame(self):
        model = models.STNClassifier((28, 28), normalise="before", padding_mode="border")
        _set_theta(model, [2.0, 0.0, 0.0, 0.0, 2.0, 0.0])
        torch.testing.assert_close(model.stn(_digits())[..., 0, :], torch.zeros(4, 1, 28), atol=1e-6, rtol=0)

    def test_constants_come_from_data(self):
        model = models.STNClassifier((28, 28), dataset="fashion-mnist")
        assert (model.norm.mean.item(), model.norm.std.item()) == pytest.approx(NORMALISATION["fashion-mnist"])


class TestSizes:
    def test_tutorial_parameter_counts(self):
        """The tutorial's numbers: classifier 21,840 (fc 320 -> 50) and localisation 5,520 (fc 90 -> 32)."""
        tutorial = models.TutorialNet((28, 28))
        assert (tutorial.fc_features, tutorial.loc_features) == (320, 90)
        assert models.count_parameters(tutorial) == 27_360
        assert sum(p.numel() for p in tutorial.localization_parameters()) == 5_520
        assert models.count_parameters(models.TutorialNet((28, 28), use_stn=False)) == 21_840

    def test_tutorial_layers_in_tutorial_order(self):
        names = [name for name, _ in models.TutorialNet((28, 28)).named_children()]
        assert names[1:] == ["conv1", "conv2", "conv2_drop", "fc1", "fc2", "localization", "fc_loc"]

    @pytest.mark.parametrize("size", [28, 42, 60])
    def test_cnn_matches_stn(self, size):
        stn = models.build_model("stn", in_size=(size, size))
        cnn = models.build_model("cnn", in_size=(size, size))
        n_stn, n_cnn = models.count_parameters(stn), models.count_parameters(cnn)
        assert abs(n_cnn - n_stn) / n_stn < 0.02, (n_stn, n_cnn)
        assert cnn(torch.zeros(2, 1, size, size)).shape == (2, 10)

    def test_loc_downsample(self):
        """The localisation network's input pooling: 2 (the paper's) by default, 1 for full resolution."""
        paper, full = models.STNClassifier((42, 42)), models.STNClassifier((42, 42), loc_downsample=1)
        assert isinstance(paper.localization[0], torch.nn.AvgPool2d)
        assert isinstance(full.localization[0], torch.nn.Conv2d)
        assert models.count_parameters(full) > models.count_parameters(paper)  # more features into fc_loc
        built = models.build_model("stn", in_size=(42, 42), loc_downsample=1)
        assert models.count_parameters(built) == models.count_parameters(full)
        torch.testing.assert_close(
            full.stn(_digits(size=42)), paper.stn(_digits(size=42))
        )  # both start at the identity

    def test_localization_parameters(self):
        model = models.STNClassifier((42, 42))
        loc = {id(p) for p in model.localization_parameters()}
        assert {id(p) for p in model.fc_loc.parameters()} <= loc
        assert {id(p) for p in model.localization.parameters()} <= loc
        assert loc.isdisjoint(id(p) for p in model.classifier.parameters())

    @pytest.mark.parametrize("name", models.MODELS)
    def test_build_model_runs(self, name):
        model = models.build_model(name, in_size=(42, 42))
        assert model(_digits(2, 42)).shape == (2, 10)


class TestRotationTools:
    """The similarity transform, iterative refinement, coordinate channels and the other classifiers."""

    def test_similarity_matches_rotation_oracle(self):
        """params (a, s, tx, ty) -> s * R(a) with torch.cos / torch.sin, and the shift in the last column."""
        params = torch.tensor([[0.3, 1.2, 0.1, -0.2], [-1.0, 0.5, 0.0, 0.4]], dtype=torch.float64)
        theta = models.params_to_theta(params, "similarity")
        a, s = params[:, 0], params[:, 1]
        expected = torch.stack(
            [
                torch.stack([s * torch.cos(a), -s * torch.sin(a), params[:, 2]], 1),
                torch.stack([s * torch.sin(a), s * torch.cos(a), params[:, 3]], 1),
            ],
            1,
        )
        torch.testing.assert_close(theta, expected)
        assert theta.shape == (2, 2, 3)

    def test_similarity_gradient_reaches_the_angle(self):
        params = torch.tensor([[0.0, 1.0, 0.0, 0.0]], requires_grad=True)
        models.params_to_theta(params, "similarity")[0, 1, 0].backward()  # s sin a: d/da = s cos a = 1
        assert params.grad[0].tolist() == [1.0, 0.0, 0.0, 0.0]

    def test_refine_theta_is_the_matrix_product(self):
        """Against 3x3 homogeneous matrices multiplied by torch.matmul (the oracle)."""
        g = torch.Generator().manual_seed(0)
        theta, correction = torch.randn(3, 2, 3, generator=g), torch.randn(3, 2, 3, generator=g)
        last = torch.tensor([0.0, 0.0, 1.0]).expand(3, 1, 3)
        expected = (torch.cat([theta, last], 1) @ torch.cat([correction, last], 1))[:, :2]
        torch.testing.assert_close(models.refine_theta(theta, correction), expected)
        homography = torch.randn(3, 3, 3, generator=g)
        torch.testing.assert_close(models.refine_theta(homography, homography), homography @ homography)

    def test_refine_theta_checks_shapes(self):
        with pytest.raises(ValueError, match=r"correction must have shape \(N, 2, 3\)"):
            models.refine_theta(torch.zeros(2, 2, 3), torch.zeros(2, 3, 3))

    def test_iterations_compose_the_prediction(self):
        """With a constant prediction T, two looks give T after T, three give T after T after T."""
        x = _digits()
        shift = [1.0, 0.0, 0.1, 0.0, 1.0, 0.0]
        for looks, expected_tx in ((1, 0.1), (2, 0.2), (3, 0.3)):
            model = models.STNClassifier((28, 28), iterations=looks)
            _set_theta(model, shift)
            torch.testing.assert_close(model.theta(x)[:, 0, 2], torch.full((4,), expected_tx), atol=1e-6, rtol=0)

    def test_iterations_keep_identity_init(self):
        model = models.STNClassifier((28, 28), iterations=3)
        x = _digits()
        torch.testing.assert_close(model.stn(x), x, atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="iterations must be an int >= 1"):
            models.STNClassifier((28, 28), iterations=0)

    def test_add_coords(self):
        out = models.AddCoords()(torch.zeros(2, 1, 3, 5))
        assert out.shape == (2, 3, 3, 5)
        torch.testing.assert_close(out[0, 1, 0], torch.linspace(-1, 1, 5))  # x runs along the columns
        torch.testing.assert_close(out[0, 2, :, 0], torch.linspace(-1, 1, 3))  # y down the rows
        net = models.localization_net((28, 28), coords=True)
        assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 20)

    @pytest.mark.parametrize("kind", models.CLASSIFIERS)
    def test_classifiers(self, kind):
        model = models.build_model("stn", in_size=(28, 28), classifier=kind)
        assert model(_digits()).shape == (4, 10)
        baseline = models.build_model("cnn", in_size=(28, 28), classifier=kind)
        assert baseline(_digits()).shape == (4, 10)
        # the paper's comparison: the baseline has about as many parameters as the STN
        assert abs(models.count_parameters(baseline) / models.count_parameters(model) - 1) < 0.05

    def test_fcn_is_three_linear_layers(self):
        net = models.build_model("stn", in_size=(28, 28), classifier="fcn").classifier
        assert [type(m) for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))] == [
            torch.nn.Linear
        ] * 3
        assert isinstance(models.build_model("cnn", in_size=(28, 28), classifier="fcn"), models.FCNBaseline)
        with pytest.raises(ValueError, match="classifier must be one of"):
            models.build_model("stn", classifier="resnet")


class TestThinPlateSpline:
    """The "tps" transformer: K control-point offsets, identity at init, the grid of stnlib.warps."""

    def test_grid_is_warps_tps_grid(self):
        transformer = models.SpatialTransformer((28, 28), transform="tps", tps_points=3)
        offsets = 0.1 * torch.randn(2, 9, 2, generator=torch.Generator().manual_seed(0))
        expected = tps_grid(offsets, tps_control_points(3), (2, 1, 28, 28), align_corners=False)
        torch.testing.assert_close(transformer.grid(offsets), expected, atol=1e-6, rtol=0)
        other = transformer.grid(offsets, size=(14, 10))  # another output size solves for that size
        torch.testing.assert_close(other, tps_grid(offsets, tps_control_points(3), (2, 1, 14, 10)), atol=1e-6, rtol=0)

    def test_regression_layer_has_two_numbers_per_control_point(self):
        model = models.STNClassifier((28, 28), transform="tps", tps_points=5)
        assert model.fc_loc[-1].out_features == 50 and model.fc_loc[-1].bias.abs().sum() == 0

    def test_gradient_reaches_the_localisation_network(self):
        torch.manual_seed(0)
        model = models.STNClassifier((28, 28), transform="tps")
        model(_digits()).sum().backward()
        assert model.fc_loc[-1].weight.grad.abs().sum() > 0

    def test_tps_cannot_iterate(self):
        with pytest.raises(ValueError, match="iterations must be 1 for transform 'tps'"):
            models.STNClassifier((28, 28), transform="tps", iterations=2)

    def test_odd_params(self):
        with pytest.raises(ValueError, match="an even P"):
            models.params_to_theta(torch.zeros(2, 5), "tps")


class TestParallelTransformers:
    def test_each_transformer_warps_the_whole_input(self):
        torch.manual_seed(0)
        model = models.ParallelSTNClassifier((42, 42), transformers=3, in_channels=2, num_classes=19)
        x = torch.cat([_digits(2, 42, seed=1), _digits(2, 42, seed=2)], dim=1)  # (2, 2, 42, 42)
        _set_parallel(model, 1, [0.5, 0.0, 0.2, 0.0, 0.5, -0.1])  # transformer 1 zooms on one spot
        out = model.stn(x)
        assert out.shape == (2, 6, 28, 28) and model(x).shape == (2, 19)
        identity = F.grid_sample(
            x, F.affine_grid(torch.eye(2, 3).expand(2, 2, 3), (2, 2, 28, 28), align_corners=False), align_corners=False
        )
        torch.testing.assert_close(out[:, 0:2], identity, atol=1e-5, rtol=0)  # transformer 0: channels 0-1
        theta = torch.tensor([[0.5, 0.0, 0.2], [0.0, 0.5, -0.1]]).expand(2, 2, 3)
        zoomed = F.grid_sample(x, F.affine_grid(theta, (2, 2, 28, 28), align_corners=False), align_corners=False)
        torch.testing.assert_close(out[:, 2:4], zoomed, atol=1e-5, rtol=0)  # transformer 1: channels 2-3
        assert model.theta(x).shape == (2, 3, 2, 3) and model.affine_theta(x).shape == (2, 3, 2, 3)

    def test_parallel_transformers_module(self):
        """The module on its own: any channel count, outputs stacked, thetas stacked, sizes must agree."""
        a, b = (models.SpatialTransformer((28, 28), in_channels=3, out_size=(10, 10)) for _ in range(2))
        _set_theta(b, [0.5, 0.0, 0.0, 0.0, 0.5, 0.0])
        parallel = models.ParallelTransformers([a, b])
        x = torch.rand(2, 3, 28, 28)
        out = parallel(x)
        assert out.shape == (2, 6, 10, 10) and parallel.theta(x).shape == (2, 2, 2, 3)
        torch.testing.assert_close(out[:, 3:], b(x))
        with pytest.raises(ValueError, match="transformers must share in_size, out_size and in_channels"):
            models.ParallelTransformers([a, models.SpatialTransformer((28, 28), in_channels=3)])

    def test_transformers_have_their_own_localisation_networks(self):
        model = models.ParallelSTNClassifier((42, 42))
        first, second = (set(map(id, t.parameters())) for t in model.transformers)
        assert first.isdisjoint(second)
        assert set(map(id, model.localization_parameters())) == first | second


class TestFeatureMapTransformer:
    def test_warps_feature_maps_of_any_channel_count(self):
        model = models.FeatureMapSTNClassifier((42, 42), channels=(7, 12))
        x = _digits(3, 42)
        maps = model.features(x)
        assert maps.shape == (3, 7, 19, 19) and model.transformer.in_channels == 7
        assert model.transformer(maps).shape == (3, 7, 12, 12) and model(x).shape == (3, 10)

    def test_identity_keeps_the_maps(self):
        model = models.FeatureMapSTNClassifier((28, 28))  # 12x12 maps, cropped to 12x12: nothing changes
        maps = model.features(_digits(2))
        torch.testing.assert_close(model.transformer(maps), maps, atol=1e-5, rtol=0)

    def test_stn_shows_the_same_theta_on_the_image(self):
        model = models.FeatureMapSTNClassifier((42, 42))
        _set_theta(model.transformer, [0.6, 0.0, 0.1, 0.0, 0.6, 0.0])
        x = _digits(2, 42)
        theta = torch.tensor([[0.6, 0.0, 0.1], [0.0, 0.6, 0.0]]).expand(2, 2, 3)
        expected = F.grid_sample(x, F.affine_grid(theta, (2, 1, 28, 28), align_corners=False), align_corners=False)
        torch.testing.assert_close(model.stn(x), expected, atol=1e-5, rtol=0)


class TestChannelsAndClasses:
    @pytest.mark.parametrize("name", ["stn", "cnn", "st2"])
    def test_addition_shapes(self, name):
        model = models.build_model(name, in_size=(42, 42), in_channels=2, num_classes=19)
        assert model(torch.rand(2, 2, 42, 42)).shape == (2, 19)

    def test_matched_baselines_count_the_channels(self):
        stn = models.STNClassifier((42, 42), in_channels=2, num_classes=19)
        cnn, fcn = models.matched_cnn(stn), models.matched_fcn(stn)
        assert abs(models.count_parameters(cnn) - models.count_parameters(stn)) < 0.02 * models.count_parameters(stn)
        per_unit = 2 * 42 * 42 + 64  # one hidden unit of the FCN costs its input weights and a little more
        assert abs(models.count_parameters(fcn) - models.count_parameters(stn)) <= per_unit
        assert cnn(torch.rand(1, 2, 42, 42)).shape == (1, 19) and fcn(torch.rand(1, 2, 42, 42)).shape == (1, 19)

    def test_tutorial_net_is_one_channel(self):
        with pytest.raises(ValueError, match="the tutorial's network takes 1 channel and 10 classes; got 2 and 19"):
            models.build_model("tutorial", in_channels=2, num_classes=19)

    def test_in_channels_must_be_positive(self):
        with pytest.raises(ValueError, match="in_channels must be an int >= 1; got 0"):
            models.SpatialTransformer((28, 28), in_channels=0)


def _set_parallel(model, index, params):
    with torch.no_grad():
        model.transformers[index].fc_loc[-1].bias.copy_(torch.tensor(params))
