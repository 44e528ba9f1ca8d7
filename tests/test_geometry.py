"""stnlib.geometry: closed forms, composition order, inverses, and the pixel <-> normalised
conventions checked against torch's own affine_grid / grid_sample (the oracle)."""

import math

import pytest
import torch
import torch.nn.functional as F

from stnlib import geometry as G


class TestBuilders:
    def test_rotation_closed_form_and_batch(self):
        angles = torch.tensor([0.0, 30.0, -90.0, 200.0], dtype=torch.float64)
        m = G.rotation_matrix(angles)
        assert m.shape == (4, 3, 3) and m.dtype == torch.float64
        rad = angles * math.pi / 180
        torch.testing.assert_close(m[:, 0, 0], torch.cos(rad))
        torch.testing.assert_close(m[:, 0, 1], -torch.sin(rad))
        torch.testing.assert_close(m[:, 1, 0], torch.sin(rad))
        torch.testing.assert_close(torch.linalg.det(m), torch.ones(4, dtype=torch.float64))

    def test_positive_angle_turns_x_axis_towards_y_down(self):
        # With y pointing down this is clockwise on screen.
        p = G.transform_points(G.rotation_matrix(90.0), torch.tensor([1.0, 0.0]))
        torch.testing.assert_close(p, torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)

    def test_scale_shear_translation(self):
        p = torch.tensor([2.0, 3.0])
        torch.testing.assert_close(G.transform_points(G.scale_matrix(2.0, 0.5), p), torch.tensor([4.0, 1.5]))
        torch.testing.assert_close(G.transform_points(G.shear_matrix(0.5), p), torch.tensor([3.5, 3.0]))
        torch.testing.assert_close(G.transform_points(G.translation_matrix(1.0, -1.0), p), torch.tensor([3.0, 2.0]))

    def test_builders_broadcast_parameters(self):
        m = G.translation_matrix(torch.tensor([1.0, 2.0, 3.0]), 0.0)
        assert m.shape == (3, 3, 3)
        assert m[:, 0, 2].tolist() == [1.0, 2.0, 3.0]


class TestAlgebra:
    def test_composition_order_matters(self):
        T, R = G.translation_matrix(2.0, 0.0), G.rotation_matrix(90.0)
        p = torch.tensor([1.0, 0.0])
        # compose(T, R): rotate first -> (0, 1), then shift -> (2, 1)
        torch.testing.assert_close(G.transform_points(G.compose(T, R), p), torch.tensor([2.0, 1.0]), atol=1e-6, rtol=0)
        # compose(R, T): shift first -> (3, 0), then rotate -> (0, 3)
        torch.testing.assert_close(G.transform_points(G.compose(R, T), p), torch.tensor([0.0, 3.0]), atol=1e-6, rtol=0)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_invert_matches_linalg_inv(self, dtype):
        g = torch.Generator().manual_seed(0)
        theta = torch.eye(2, 3, dtype=dtype) + 0.5 * torch.randn(5, 2, 3, dtype=dtype, generator=g)
        m = G.theta_to_matrix(theta)
        torch.testing.assert_close(G.invert_affine(m), torch.linalg.inv(m))
        torch.testing.assert_close(G.invert_affine(theta), torch.linalg.inv(m)[:, :2])

    def test_theta_matrix_round_trip(self):
        theta = torch.randn(3, 2, 3)
        m = G.theta_to_matrix(theta)
        assert m[:, 2].tolist() == [[0.0, 0.0, 1.0]] * 3
        torch.testing.assert_close(G.matrix_to_theta(m), theta)

    def test_about_point_keeps_the_point(self):
        m = G.about_point(G.rotation_matrix(37.0), (3.0, -2.0))
        torch.testing.assert_close(G.transform_points(m, torch.tensor([3.0, -2.0])), torch.tensor([3.0, -2.0]))

    @pytest.mark.parametrize(
        "call, error, message",
        [
            (
                lambda: G.compose(torch.eye(3), torch.eye(2, 3)),
                ValueError,
                r"matrices\[1\] must have shape \(\.\.\., 3, 3\); got \(2, 3\)",
            ),
            (lambda: G.compose(), ValueError, "compose needs at least one matrix"),
            (lambda: G.matrix_to_theta(torch.ones(3, 3)), ValueError, "last row"),
            (
                lambda: G.theta_to_matrix(torch.zeros(3, 3)),
                ValueError,
                r"theta must have shape \(\.\.\., 2, 3\); got \(3, 3\)",
            ),
            (lambda: G.invert_affine(torch.eye(3).long()), ValueError, "matrix must have a floating-point dtype"),
            (
                lambda: G.pixel_to_normalised(torch.zeros(4, 3), size=(2, 2), align_corners=True),
                ValueError,
                r"xy_pix must have shape \(\.\.\., 2\)",
            ),
            (lambda: G.normalisation_matrix(size=(0, 4), align_corners=False), ValueError, "size must be"),
            (
                lambda: G.pixel_to_normalised([1.0, 2.0], size=(2, 2), align_corners=True),
                TypeError,
                "xy_pix must be a torch.Tensor",
            ),
        ],
    )
    def test_exception(self, call, error, message):
        with pytest.raises(error, match=message):
            call()

    def test_size_is_keyword_only(self):
        with pytest.raises(TypeError):
            G.pixel_to_normalised(torch.zeros(2), (2, 2), True)


class TestNormalisedCoordinates:
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("size", [(5, 7), (28, 28), (2, 9)])
    def test_pixel_centres_match_torch_identity_grid(self, size, align_corners):
        height, width = size
        # Oracle: torch's identity grid holds the normalised coordinate of every output pixel centre.
        grid = F.affine_grid(torch.eye(2, 3)[None], (1, 1, height, width), align_corners=align_corners)[0]
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        xy_pix = torch.stack([cols, rows], dim=-1).float()
        torch.testing.assert_close(
            G.pixel_to_normalised(xy_pix, size=size, align_corners=align_corners), grid, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            G.normalised_to_pixel(grid, size=size, align_corners=align_corners), xy_pix, atol=1e-5, rtol=0
        )

    @pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid behavior has changed")
    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("n", [1, 2, 5, 28])
    def test_pixel_centres_norm_is_torch_identity_grid_bit_for_bit(self, n, align_corners):
        # Oracle: the x column of torch's identity grid on a 1 x n image, compared exactly.
        grid = F.affine_grid(torch.eye(2, 3)[None], (1, 1, 1, n), align_corners=align_corners)[0, 0, :, 0]
        assert torch.equal(G.pixel_centres_norm(n, align_corners=align_corners), grid)
        if n > 1:  # and the formula of normalisation_matrix at the pixels 0 .. n - 1
            xy = torch.stack([torch.arange(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)], -1)
            expected = G.pixel_to_normalised(xy, size=(2, n), align_corners=align_corners)[:, 0]
            torch.testing.assert_close(
                G.pixel_centres_norm(n, align_corners=align_corners, dtype=torch.float64), expected
            )

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_unnormalise_inverts_the_normalisation(self, align_corners):
        coord = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64, requires_grad=True)
        pix = G.unnormalise(coord, 7, align_corners=align_corners)
        xy = torch.stack([coord, torch.zeros_like(coord)], -1)
        expected = G.normalised_to_pixel(xy.detach(), size=(2, 7), align_corners=align_corners)[:, 0]
        torch.testing.assert_close(pix.detach(), expected)
        pix.sum().backward()  # differentiable: d pix / d coord = (W - 1) / 2 or W / 2
        torch.testing.assert_close(coord.grad, torch.full_like(coord, 3.0 if align_corners else 3.5))
        assert coord.detach().min() == -1.5  # the input is not changed in place

    def test_edges_and_centres_by_hand(self):
        # W = 4: align_corners=False puts -1/+1 on the outer edges x = -0.5 and x = 3.5.
        edges = G.normalised_to_pixel(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), size=(2, 4), align_corners=False)
        torch.testing.assert_close(edges, torch.tensor([[-0.5, -0.5], [3.5, 1.5]]))
        centres = G.normalised_to_pixel(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), size=(2, 4), align_corners=True)
        torch.testing.assert_close(centres, torch.tensor([[0.0, 0.0], [3.0, 1.0]]))


def warp(image, theta, align_corners):
    grid = F.affine_grid(theta[None], (1, 1, *image.shape[-2:]), align_corners=align_corners)
    return F.grid_sample(image[None, None], grid, align_corners=align_corners)[0, 0]


class TestPixelTransforms:
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_rotate_90_about_centre_is_rot90(self, align_corners):
        image = torch.rand(6, 6)
        centre = ((6 - 1) / 2, (6 - 1) / 2)
        # +90 degrees with y down: clockwise on screen, which is torch.rot90 with k=-1.
        turn = G.about_point(G.rotation_matrix(90.0), centre)
        theta = G.theta_from_pixel_transform(turn, src_size=(6, 6), align_corners=align_corners)
        torch.testing.assert_close(warp(image, theta, align_corners), torch.rot90(image, k=-1), atol=1e-5, rtol=0)

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_shift_on_non_square_image(self, align_corners):
        image = torch.rand(4, 7)
        shift = G.translation_matrix(2.0, 1.0)  # content moves 2 px right, 1 px down
        theta = G.theta_from_pixel_transform(shift, src_size=(4, 7), align_corners=align_corners)
        out = warp(image, theta, align_corners)
        torch.testing.assert_close(out[1:, 2:], image[:-1, :-2], atol=1e-5, rtol=0)
        assert out[0].abs().max() == 0 and out[:, :2].abs().max() == 0

    def test_rotation_on_non_square_image_keeps_aspect(self):
        # A 90-degree turn of a 4x8 image's centre 2x2 block: the pixel distances are preserved.
        size = (4, 8)
        turn = G.about_point(G.rotation_matrix(90.0), ((8 - 1) / 2, (4 - 1) / 2))
        theta = G.theta_from_pixel_transform(turn, src_size=size, align_corners=True)
        back = G.pixel_transform_from_theta(theta, src_size=size, align_corners=True)
        torch.testing.assert_close(back, turn, atol=1e-5, rtol=0)
        # Naive normalised rotation would not be a pure rotation in pixels:
        naive = G.pixel_transform_from_theta(
            G.matrix_to_theta(G.rotation_matrix(90.0)), src_size=size, align_corners=True
        )
        assert not torch.allclose(naive, turn, atol=1e-3)

    def test_different_output_size(self):
        theta = G.theta_from_pixel_transform(G.scale_matrix(2.0), src_size=(4, 4), dst_size=(8, 8), align_corners=True)
        back = G.pixel_transform_from_theta(theta, src_size=(4, 4), dst_size=(8, 8), align_corners=True)
        torch.testing.assert_close(back, G.scale_matrix(2.0), atol=1e-6, rtol=0)


class TestParams:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_round_trip(self, dtype):
        g = torch.Generator().manual_seed(3)
        theta = torch.eye(2, 3, dtype=dtype) + 0.4 * torch.randn(16, 2, 3, dtype=dtype, generator=g)
        params = G.decompose_theta(theta)
        torch.testing.assert_close(G.compose_theta(*params), theta, atol=1e-5, rtol=1e-5)

    def test_known_parameters(self):
        theta = G.compose_theta(rotation_deg=30.0, scale_x=0.8, scale_y=1.5, shear=0.2, tx=0.1, ty=-0.3)
        params = G.decompose_theta(theta)
        expected = [30.0, 0.8, 1.5, 0.2, 0.1, -0.3]
        torch.testing.assert_close(torch.stack(list(params)), torch.tensor(expected), atol=1e-5, rtol=0)

    def test_mirror_is_negative_scale_y(self):
        mirror_x = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        params = G.decompose_theta(mirror_x)
        assert params.scale_x.item() == pytest.approx(1.0) and params.scale_y.item() == pytest.approx(-1.0)
        torch.testing.assert_close(G.compose_theta(*params), mirror_x, atol=1e-6, rtol=0)
