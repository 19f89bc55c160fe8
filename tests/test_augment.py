"""data/augment.py: identity, exact shifts, rot90, zoom by hand, elastic fields, determinism."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from cnncli.data.augment import (
    AugmentSpec,
    affine_warp,
    augment_batch,
    elastic_field,
    gaussian_matrix,
)
from cnncli.errors import ConfigError, DataError
from cnncli.spec import check


def warp(images: np.ndarray, angle: float = 0.0, scale: float = 1.0,
         shift: tuple[float, float] = (0.0, 0.0), displacement: np.ndarray | None = None):
    """The same warp for every image of the batch."""
    b = images.shape[0]
    return affine_warp(images, np.full(b, angle), np.full(b, scale), np.tile(shift, (b, 1)),
                       displacement)


@pytest.fixture
def batch(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)


def test_zero_strength_augmentation_is_the_identity_bit_exact(
    batch: np.ndarray, rng: np.random.Generator
) -> None:
    out = augment_batch(batch, AugmentSpec(), rng)
    np.testing.assert_array_equal(out, batch)
    assert out is not batch
    np.testing.assert_array_equal(warp(batch), batch)  # the sampling path, explicitly


def test_integer_shift_moves_a_known_image_by_exactly_that_many_pixels() -> None:
    img = np.zeros((1, 8, 9), dtype=np.uint8)
    img[0, 2:5, 3:7] = np.arange(1, 13).reshape(3, 4)  # a 3x4 block with distinct values
    out = warp(img, shift=(2.0, -3.0))  # 2 rows down, 3 columns left
    expected = np.zeros_like(img)
    expected[0, 4:7, 0:4] = np.arange(1, 13).reshape(3, 4)
    np.testing.assert_array_equal(out, expected)


def test_shift_beyond_the_image_leaves_only_background(batch: np.ndarray) -> None:
    np.testing.assert_array_equal(warp(batch, shift=(0.0, 28.0)), 0)
    np.testing.assert_array_equal(warp(batch, shift=(-40.5, 3.0)), 0)


@pytest.mark.parametrize("size", [5, 6])
@pytest.mark.parametrize(("angle", "k"), [(90.0, 1), (-90.0, -1), (180.0, 2), (270.0, 3)])
def test_rotation_by_multiples_of_90_matches_rot90_counter_clockwise(
    rng: np.random.Generator, size: int, angle: float, k: int
) -> None:
    # np.rot90(k=1) turns the image counter-clockwise as displayed (row 0 on top): the
    # top-right pixel goes to the top-left. Positive angles turn the same way.
    img = rng.integers(1, 256, (2, size, size), dtype=np.uint8)  # asymmetric, no zeros
    np.testing.assert_array_equal(warp(img, angle=angle), np.rot90(img, k, axes=(1, 2)))


def test_scaling_by_2_doubles_a_centred_square() -> None:
    # A 6x6 square of 255 on rows/columns 11..16 of a 28x28 image (centre 13.5). Zoom 2
    # samples output row y at source row 13.5 + (y - 13.5) / 2:
    #   y = 7 -> 10.25 (a quarter of row 11): 63.75 -> 64     y = 8 -> 10.75: 191.25 -> 191
    #   y = 9..18 -> inside the square: 255                    y = 19 -> 16.25: 191, 20 -> 64
    # so at half intensity the square is exactly 12x12 = twice its side (no tolerance
    # needed: the bilinear edge falls symmetric about the threshold); corners (8, 8) are
    # 0.75^2 255 = 143.4 -> 143.
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    img[0, 11:17, 11:17] = 255
    out = warp(img, scale=2.0)[0]
    row = [0] * 7 + [64, 191] + [255] * 10 + [191, 64] + [0] * 7
    np.testing.assert_array_equal(out[13], row)
    np.testing.assert_array_equal(out[:, 13], row)
    assert out[8, 8] == 143
    bright = np.argwhere(out >= 128)
    assert bright.min(axis=0).tolist() == [8, 8] and bright.max(axis=0).tolist() == [19, 19]
    assert len(bright) == 144


def test_values_stay_in_range_without_wraparound(rng: np.random.Generator) -> None:
    # A white image rotated and zoomed out: where every tap is inside it stays exactly 255
    # (no rounding to 256, which would wrap to 0); the corners fetched from outside are 0.
    img = np.full((4, 28, 28), 255, dtype=np.uint8)
    spec = AugmentSpec(rotate=30.0, scale=[0.8, 0.9], translate=1.0)
    out = augment_batch(img, spec, rng)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out[:, 10:18, 10:18], 255)
    np.testing.assert_array_equal(out[:, 0, 0], 0)
    np.testing.assert_array_equal(img, 255)  # the input is not modified


def test_elastic_with_alpha_0_is_the_identity(
    batch: np.ndarray, rng: np.random.Generator
) -> None:
    field = elastic_field(batch.shape, 0.0, 4.0, rng)
    assert field.shape == (2, *batch.shape) and field.dtype == np.float32
    np.testing.assert_array_equal(field, 0.0)
    np.testing.assert_array_equal(warp(batch, displacement=field), batch)
    spec = AugmentSpec(elastic_alpha=0.0, elastic_sigma=4.0)
    np.testing.assert_array_equal(augment_batch(batch, spec, rng), batch)


def test_displacement_samples_the_image_at_p_plus_d(batch: np.ndarray) -> None:
    # out(p) = image(p + d): a constant field d = (1, 2) moves content 1 up and 2 left.
    field = np.zeros((2, *batch.shape), dtype=np.float32)
    field[0], field[1] = 1.0, 2.0
    out = warp(batch, displacement=field)
    np.testing.assert_array_equal(out[:, :-1, :-2], batch[:, 1:, 2:])
    np.testing.assert_array_equal(out[:, -1, :], 0)
    np.testing.assert_array_equal(out[:, :, -2:], 0)


def test_elastic_field_is_bounded_smooth_and_of_the_expected_size(
    rng: np.random.Generator,
) -> None:
    alpha, sigma = 10.0, 4.0
    field = elastic_field((64, 40, 40), alpha, sigma, rng)
    assert np.abs(field).max() <= alpha  # a weighted mean of U(-1, 1), times alpha
    # Away from the border (where the zero padding shrinks it) each displacement is
    # alpha sum_kl g_k g_l n_kl with n ~ U(-1, 1) (variance 1/3), so its standard deviation is
    # alpha sqrt(1/3) sum_k g_k^2, where sum_k g_k^2 ~ 1 / (2 sqrt(pi) sigma) = 0.0705.
    kernel = np.exp(-0.5 * (np.arange(-16, 17) / sigma) ** 2)
    kernel /= kernel.sum()
    expected = alpha * math.sqrt(1 / 3) * (kernel**2).sum()
    inner = field[:, :, 17:23, 17:23]
    assert abs(inner.std() / expected - 1) < 0.1
    # Smooth: neighbours differ by a small fraction of the spread (white noise: ~1.4x).
    assert np.abs(np.diff(inner, axis=3)).mean() < 0.2 * inner.std()


def test_gaussian_matrix_is_a_zero_padded_convolution(rng: np.random.Generator) -> None:
    sigma = 1.5
    radius = 6  # ceil(4 sigma)
    kernel = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    kernel /= kernel.sum()
    f = rng.standard_normal(20)
    np.testing.assert_allclose(gaussian_matrix(20, sigma) @ f,
                               np.convolve(f, kernel, mode="same"), rtol=1e-5, atol=1e-6)


def test_same_generator_state_gives_the_same_bits(batch: np.ndarray) -> None:
    spec = AugmentSpec(translate=3.0, rotate=15.0, scale=[0.8, 1.2], elastic_alpha=8.0,
                       elastic_sigma=3.0, probability=0.7)
    g1, g2 = np.random.default_rng(42), np.random.default_rng(42)
    a, b = augment_batch(batch, spec, g1), augment_batch(batch, spec, g2)
    np.testing.assert_array_equal(a, b)
    assert g1.bit_generator.state == g2.bit_generator.state  # same number of draws used
    c = augment_batch(batch, spec, np.random.default_rng(43))
    assert (a != c).any()
    assert (a != batch).any()


def test_probability_decides_which_images_are_augmented(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (200, 12, 12), dtype=np.uint8)
    spec = AugmentSpec(rotate=45.0, probability=0.0)
    np.testing.assert_array_equal(augment_batch(img, spec, rng), img)
    spec = AugmentSpec(rotate=45.0, probability=0.5)
    changed = (augment_batch(img, spec, rng) != img).any(axis=(1, 2))
    assert 70 < changed.sum() < 130  # binomial(200, 0.5): mean 100, sd 7


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("translate", -1, "-1"),
    ("translate", True, "true"),
    ("rotate", 200.0, "200.0"),
    ("rotate", float("nan"), "NaN"),
    ("scale", [2.0, 1.0], "[2.0, 1.0]"),
    ("scale", [0, 1], "0"),
    ("scale", "wide", "'wide'"),
    ("elastic_alpha", float("inf"), "Infinity"),
    ("elastic_sigma", 0, "0"),
    ("probability", 1.5, "1.5"),
])
def test_augment_spec_rejects_bad_values_quoting_them(field: str, value: object,
                                                      shown: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}.*: .*received {re.escape(shown)}"):
        check(AugmentSpec, {field: value})


def test_augment_spec_takes_a_yaml_list_for_scale_and_stores_floats() -> None:
    spec = check(AugmentSpec, {"translate": 2, "scale": [1, 2]})
    assert spec.scale == [1.0, 2.0] and isinstance(spec.translate, float)


def test_augment_refuses_images_that_are_not_a_uint8_batch(rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match=r"uint8 images \(B, H, W\), received float32"):
        augment_batch(np.zeros((2, 28, 28), np.float32), AugmentSpec(), rng)
    with pytest.raises(DataError, match=r"received uint8 \(28, 28\)"):
        augment_batch(np.zeros((28, 28), np.uint8), AugmentSpec(), rng)
    with pytest.raises(DataError, match=r"at most 4000x4000 pixels, received \(1, 3, 4001\)"):
        augment_batch(np.zeros((1, 3, 4001), np.uint8), AugmentSpec(), rng)
