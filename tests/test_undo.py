"""Tests of stnlib.undo: the undo statistics against oracles built from the ground truth."""

from __future__ import annotations

import pytest
import torch

from stnlib import blocking, data, geometry, undo

torch.set_num_threads(1)


class _Fixed(torch.nn.Module):
    """A stand-in STN whose theta is given per sample (in dataset order)."""

    def __init__(self, theta):
        super().__init__()
        self.register_buffer("thetas", theta.float())
        self.seen = 0

    def theta(self, x):
        out = self.thetas[self.seen : self.seen + len(x)]
        self.seen += len(x)
        return out


def _rotation(angle_deg: torch.Tensor) -> torch.Tensor:
    """(N,) degrees -> (N, 2, 3) pure rotations, from torch.cos / torch.sin (the oracle)."""
    rad = torch.deg2rad(angle_deg.double())
    c, s, z = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1)], -2)


@pytest.fixture(scope="module")
def r_test(data_root):
    return data.load_datasets("mnist", "r", seed=0, limit=300)[1]


@pytest.fixture(scope="module")
def rts_test(data_root):
    return data.load_datasets("mnist", "rts", seed=0, limit=300)[1]


class TestIdealTheta:
    def test_inverse_of_placement(self, rts_test):
        """ideal_theta is the inverse of the placing theta (geometry.invert_affine is the oracle)."""
        expected = geometry.invert_affine(rts_test.params["theta"].double())
        torch.testing.assert_close(undo.ideal_theta(rts_test.params), expected)

    def test_undoes_the_drawn_rotation(self, r_test):
        """On R the ideal theta turns by the drawn angle (the rotation of the canvas is -angle)."""
        angles = undo.rotation_from_theta(undo.ideal_theta(r_test.params))
        torch.testing.assert_close(angles, r_test.params["angle_deg"].double(), atol=1e-4, rtol=0)

    def test_projective_affine_part(self):
        homography = torch.tensor([[[2.0, 0.0, 0.4], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]])
        ideal = undo.ideal_theta({"homography": homography})
        torch.testing.assert_close(ideal, torch.tensor([[[1.0, 0.0, -0.2], [0.0, 1.0, 0.0]]], dtype=torch.float64))

    def test_elastic_has_none(self):
        assert undo.ideal_theta({"tps_offsets": torch.zeros(2, 16, 2)}) is None


class TestUndoStats:
    def test_ideal_gives_one(self, rts_test):
        """The ideal STN: every slope 1, no residual."""
        stats = undo.undo_stats(_Fixed(undo.ideal_theta(rts_test.params)), rts_test)
        assert stats["rotation_slope"] == pytest.approx(1, abs=1e-4) and stats["rotation_corr"] > 0.9999
        assert stats["scale_slope"] == pytest.approx(1, abs=1e-4)
        assert stats["shift_slope"] == pytest.approx(1, abs=1e-4)
        assert stats["angle_residual_median"] < 0.01 and stats["n"] == 300

    def test_identity_gives_zero(self, r_test):
        """theta = identity: slope 0; the residual is the spread of the angles; R varies no scale or shift."""
        stats = undo.undo_stats(_Fixed(torch.eye(2, 3).expand(300, 2, 3)), r_test)
        assert stats["rotation_slope"] == pytest.approx(0, abs=1e-9)
        assert stats["scale_slope"] is None and stats["shift_slope"] is None
        assert 35 < stats["angle_residual_median"] < 55  # uniform in +-90 degrees: median |angle| 45

    def test_half_way_rotation_gives_half(self, r_test):
        """A transformer that turns each digit by half its angle: slope 0.5, residual about a quarter of 90."""
        half = _rotation(0.5 * r_test.params["angle_deg"])
        stats = undo.undo_stats(_Fixed(half), r_test)
        assert stats["rotation_slope"] == pytest.approx(0.5, abs=1e-3)
        assert 15 < stats["angle_residual_median"] < 30

    def test_constant_offset_is_not_a_residual(self, r_test):
        """Undoing the rotation up to a constant tilt (a mean pose 20 degrees off upright) is as good."""
        tilted = _rotation(r_test.params["angle_deg"] + 20.0)
        stats = undo.undo_stats(_Fixed(tilted), r_test)
        assert stats["rotation_slope"] == pytest.approx(1, abs=1e-3) and stats["angle_residual_median"] < 0.01

    def test_scale_only(self):
        """Attention-like thetas on a set varying only the scale: rotation n/a, scale slope from the oracle."""
        scales = torch.linspace(0.7, 1.2, 50, dtype=torch.float64)
        ideal = torch.zeros(50, 2, 3, dtype=torch.float64)
        ideal[:, 0, 0] = ideal[:, 1, 1] = scales
        learned = ideal.clone()
        learned[:, 0, 0] = learned[:, 1, 1] = 1 + 0.25 * (scales - 1)
        stats = undo.undo_stats_from_theta(learned, ideal)
        assert stats["rotation_slope"] is None and stats["angle_residual_median"] is None
        assert stats["scale_slope"] == pytest.approx(0.25, abs=1e-6) and stats["shift_slope"] is None

    def test_homography_learned(self, r_test):
        """A projective STN's (N, 3, 3) output is compared through its affine part."""
        ideal = undo.ideal_theta(r_test.params)
        homography = torch.cat([ideal, torch.tensor([0.0, 0.0, 1.0]).expand(300, 1, 3).double()], 1) * 2
        stats = undo.undo_stats(_Fixed(homography), r_test)
        assert stats["rotation_slope"] == pytest.approx(1, abs=1e-4)

    def test_no_transformer_or_no_ground_truth(self, r_test, data_root):
        class Cnn(torch.nn.Module):
            use_stn = False

            def theta(self, x):
                raise AssertionError("not called")

        assert undo.undo_stats(Cnn(), r_test) is None
        assert undo.undo_stats(torch.nn.Linear(2, 2), r_test) is None  # no theta method
        _, elastic = data.load_datasets("mnist", "e", seed=0, limit=8)
        assert undo.undo_stats(_Fixed(torch.eye(2, 3).expand(8, 2, 3)), elastic) is None

    def test_shapes_must_agree(self):
        with pytest.raises(ValueError, match="learned and ideal must have the same shape"):
            undo.undo_stats_from_theta(torch.eye(2, 3).expand(3, 2, 3), torch.eye(2, 3).expand(4, 2, 3))
        with pytest.raises(ValueError, match=r"theta must have shape \(\.\.\., 2, 3\)"):
            undo.affine_part(torch.zeros(3, 2, 2))


class TestFormat:
    def test_line(self):
        stats = {"rotation_slope": 0.934, "scale_slope": 1.0, "shift_slope": None, "angle_residual_median": 7.25}
        assert undo.format_undo(stats) == (
            "undo: rotation slope 0.93, scale slope 1.00, shift slope n/a, median angle residual 7.2 deg"
        )

    def test_no_rotation(self):
        stats = {"rotation_slope": None, "scale_slope": None, "shift_slope": 0.9, "angle_residual_median": None}
        assert undo.format_undo(stats).endswith("shift slope 0.90, median angle residual n/a")

    def test_none(self):
        assert undo.format_undo(None).startswith("undo: n/a")


def test_reference_helpers_are_blocked_while_grading():
    """rotation_from_theta answers notebook 06's exercise: it is off under grading; undo_stats is not."""
    previous = blocking.set_blocked("graded")
    try:
        with pytest.raises(RuntimeError, match="not available here"):
            undo.rotation_from_theta(torch.eye(2, 3)[None])
        stats = undo.undo_stats_from_theta(
            torch.eye(2, 3).expand(3, 2, 3).clone(), _rotation(torch.tensor([1.0, 2, 3]))
        )
        assert stats["rotation_slope"] == pytest.approx(0, abs=1e-9)
    finally:
        blocking.set_blocked(previous)


class TestAttention:
    """attention_stats: which channel each of several transformers follows (MNIST addition)."""

    def _ideal(self, n=200, seed=0):
        g = torch.Generator().manual_seed(seed)
        params = data.sample_distortion("addition", n, generator=g)
        return undo.ideal_theta(params)  # (n, 2, 2, 3)

    def test_each_transformer_finds_its_channel(self):
        ideal = self._ideal()
        stats = undo.attention_stats(ideal.flip(1), ideal)["transformers"]  # transformer 0 = channel 1
        assert [t["channel"] for t in stats] == [1, 0]
        for t in stats:
            assert t["shift_slope"] == pytest.approx(1.0) and t["scale_slope"] == pytest.approx(1.0)
            assert t["rotation_slope"] == pytest.approx(1.0)

    def test_identity_follows_nothing(self):
        ideal = self._ideal()
        identity = torch.eye(2, 3, dtype=torch.float64).expand(len(ideal), 2, 3)
        (only,) = undo.attention_stats(identity, ideal)["transformers"]
        assert max(abs(s) for s in only["shift_slopes"]) < 1e-9

    def test_identity_is_said_to_follow_no_channel(self):
        ideal = self._ideal()
        identity = torch.eye(2, 3, dtype=torch.float64).expand(len(ideal), 2, 3)
        line = undo.format_undo(undo.attention_stats(identity, ideal))
        assert line.startswith("undo: transformer 0 follows no channel; closest: channel")

    def test_format(self):
        ideal = self._ideal()
        line = undo.format_undo(undo.attention_stats(ideal, ideal))
        # counted from 0, as the tensors are: transformer t follows channel t here
        assert line.startswith("undo: transformer 0 follows channel 0 (shift slope 1.00")
        assert "; transformer 1 follows channel 1" in line
        swapped = undo.format_undo(undo.attention_stats(ideal.flip(1), ideal))
        assert (
            swapped.startswith("undo: transformer 0 follows channel 1")
            and "; transformer 1 follows channel 0" in swapped
        )
