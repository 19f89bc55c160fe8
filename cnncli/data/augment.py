"""Random augmentation of training batches: one affine warp per image, optional elastic distortion.

    spec = AugmentSpec(translate=2.0, rotate=10.0, scale=(0.9, 1.1))
    batch = augment_batch(images, spec, rng)        # uint8 (B, H, W) -> uint8 (B, H, W)

Works on the uint8 images BEFORE `to_batch` normalises them: the background is exactly 0
there, the result goes through the existing `to_batch` unchanged, and the gathers move a
quarter of the bytes a float batch would. Sampling is done in float32 and rounded back to
uint8 (half up); rounding costs at most half a grey level, far below what the warp changes.

Geometry (x = column to the right, y = row DOWN, centre c = ((H-1)/2, (W-1)/2)). Each image
gets angle theta, zoom s and shift t = (ty, tx); the warp maps a source pixel p to

    p' = c + R(theta) s (p - c) + t

with R(theta) a COUNTER-CLOCKWISE rotation as the image is displayed (row 0 at the top), the
direction of np.rot90: theta = 90 on a square image gives exactly np.rot90(image). s > 1
enlarges the content, t > 0 moves it right (tx) and down (ty). Every output pixel p' samples
the source at the inverse image of p' (plus the elastic displacement d(p'), if any):

    p = c + R(-theta) (p' + d(p') - c - t) / s

bilinearly, outside pixels counting as background 0. Elastic distortion (Simard, Steinkraus
& Platt 2003) draws a field of U(-1, 1) displacements per pixel and axis, smooths it with a
Gaussian of `elastic_sigma` pixels (zero beyond the border, the kernel cut at 4 sigma) and
scales it by `elastic_alpha` pixels. It acts on the affine warp's OUTPUT (first warp, then
distort), composed into the same single sampling pass: one interpolation, not two.

Vectorised over the batch: the coordinates of all B H W output pixels are computed at once
and the 4 bilinear taps are 4 gathers from one zero-padded flat copy of the batch. The
Gaussian smoothing is separable, done as two stacked matrix products with an (H, H) and a
(W, W) banded matrix (the 1-D convolutions as matrices).

Randomness comes only from the generator passed in, drawn in a fixed order (translation,
rotation, zoom, elastic field, which images to augment), each draw only when its part is
active: the same spec and generator state give the same output bits, which is what makes a
resumed run bit-identical. Parameter draws: shift ~ U(-translate, translate) per axis (real
pixels, not rounded), theta ~ U(-rotate, rotate) degrees, s ~ U(scale[0], scale[1]).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator

from cnncli.errors import DataError, quote
from cnncli.spec import Real, Spec

#: largest image side: a padded image's pixel index (MAX_SIZE + 3)^2 stays exact in float32
MAX_SIZE = 4000


class AugmentSpec(Spec):
    """What `augment_batch` draws from (the config's `data.augment` section); every field 0
    (scale [1, 1]) leaves images unchanged."""

    translate: Real = Field(0.0, ge=0, description="largest shift in pixels, per axis; "
                            "shift ~ U(-translate, translate)")
    rotate: Real = Field(0.0, ge=0, le=180, description="largest rotation in degrees; "
                         "angle ~ U(-rotate, rotate), counter-clockwise positive")
    scale: Annotated[list[Annotated[Real, Field(gt=0)]], Field(min_length=2, max_length=2)] = \
        Field(default_factory=lambda: [1.0, 1.0], description="zoom range [lo, hi]; zoom ~ "
              "U(lo, hi), > 1 enlarges")
    elastic_alpha: Real = Field(0.0, ge=0, description="elastic displacement strength in "
                                "pixels (0: none; Simard et al. used 34 on MNIST, sigma 4)")
    elastic_sigma: Real = Field(4.0, gt=0, description="smoothness of the elastic field: the "
                                "Gaussian's standard deviation in pixels")
    probability: Real = Field(1.0, ge=0, le=1, description="chance that an image is "
                              "augmented at all (the others are copied unchanged)")

    @field_validator("scale", mode="after")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        if v[0] > v[1]:
            raise ValueError(f"must be [lo, hi] with lo <= hi, received {quote(v)}")
        return [float(v[0]), float(v[1])]

    @property
    def active(self) -> bool:
        """Whether any image can change."""
        return self.probability > 0 and (self.translate > 0 or self.rotate > 0 or
                                         self.scale != [1.0, 1.0] or self.elastic_alpha > 0)


def augment_batch(images: np.ndarray, spec: AugmentSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 (B, H, W) -> a new uint8 (B, H, W): each image warped by its own random draw.

    Deterministic given `rng`'s state (see the module docstring for the order of the draws).
    """
    _check_images(images)
    b, h, w = images.shape
    shift = np.zeros((b, 2))
    angle = np.zeros(b)
    zoom = np.ones(b)
    displacement = None
    if spec.translate > 0:
        shift = rng.uniform(-spec.translate, spec.translate, (b, 2))
    if spec.rotate > 0:
        angle = rng.uniform(-spec.rotate, spec.rotate, b)
    if spec.scale[0] < spec.scale[1]:
        zoom = rng.uniform(spec.scale[0], spec.scale[1], b)
    elif spec.scale[0] != 1.0:
        zoom = np.full(b, spec.scale[0])
    if spec.elastic_alpha > 0:
        displacement = elastic_field((b, h, w), spec.elastic_alpha, spec.elastic_sigma, rng)
    if spec.probability < 1:
        keep = rng.random(b) >= spec.probability  # these images stay as they are
        shift[keep], angle[keep], zoom[keep] = 0.0, 0.0, 1.0
        if displacement is not None:
            displacement[:, keep] = 0.0
    return affine_warp(images, angle, zoom, shift, displacement)


def affine_warp(
    images: np.ndarray,
    angle: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    displacement: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 (B, H, W) -> uint8 (B, H, W): image i rotated by angle[i] degrees
    (counter-clockwise), zoomed by scale[i] about its centre, moved by shift[i] = (dy, dx)
    pixels, then (optionally) displaced: out(p) = warped(p + displacement[:, i, p]).

    angle, scale: (B,); shift: (B, 2) as (down, right); displacement: (2, B, H, W) as
    (dy, dx), in pixels. Bilinear sampling, background 0, rounded half up.
    """
    _check_images(images)
    b, h, w = images.shape
    f32 = np.float32
    theta = np.radians(np.asarray(angle, dtype=np.float64))
    inv = 1.0 / np.asarray(scale, dtype=np.float64)
    cos = (np.cos(theta) * inv).astype(f32)[:, None, None]  # (B, 1, 1)
    sin = (np.sin(theta) * inv).astype(f32)[:, None, None]
    shift = np.asarray(shift, dtype=np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # Output coordinates relative to centre and shift: u along x (B, 1, W), v along y (B, H, 1)
    u = (np.arange(w) - cx - shift[:, 1:2]).astype(f32)[:, None, :]
    v = (np.arange(h) - cy - shift[:, 0:1]).astype(f32)[:, :, None]
    if displacement is not None:
        u = u + displacement[1]  # (B, H, W)
        v = v + displacement[0]
    # Source coordinates in the padded frame (one background pixel before each axis). Without
    # displacement, cos u + cx + 1 is (B, 1, W) and sin v is (B, H, 1): one full-size pass.
    px = (cos * u + f32(cx + 1.0)) - sin * v  # (B, H, W)
    py = (sin * u + f32(cy + 1.0)) + cos * v
    return _bilinear(images, py, px)


def _bilinear(images: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Sample uint8 (B, H, W) at padded-frame coordinates py, px (B, H, W float32) -> uint8.

    The batch is padded to (B, H + 3, W + 3): one background row/column before, two after,
    so clipping coordinates to [0, H + 1] x [0, W + 1] sends everything outside to the
    background and the taps (y0 + {0, 1}, x0 + {0, 1}) always exist. The 4 taps are gathers
    at one flat index i00 from views of the flat batch starting 0, 1, W + 3 and W + 4 later.
    Overwrites py and px.
    """
    b, h, w = images.shape
    hp, wp = h + 3, w + 3
    padded = np.zeros((b, hp, wp), dtype=np.float32)
    padded[:, 1 : h + 1, 1 : w + 1] = images
    flat = padded.reshape(-1)
    np.clip(px, 0.0, w + 1.0, out=px)
    np.clip(py, 0.0, h + 1.0, out=py)
    x0 = np.floor(px)
    px -= x0  # now the weight of the right-hand taps
    # flat index of the top-left tap, b hp wp + (y0 wp + x0): the part within an image in
    # float32 (exact: below 2^24, see MAX_SIZE), the image's offset added as an integer
    i00 = np.floor(py)
    py -= i00  # the weight of the lower taps
    i00 *= np.float32(wp)
    i00 += x0
    i00 = i00.astype(np.intp)
    i00 += (np.arange(b) * (hp * wp))[:, None, None]
    v00 = flat[i00]  # fancy indexing: measured faster than ndarray.take here
    v01 = flat[1:][i00]
    v10 = flat[wp:][i00]
    v11 = flat[wp + 1 :][i00]
    v01 -= v00  # top row: v00 + fx (v01 - v00)
    v01 *= px
    v00 += v01
    v11 -= v10  # bottom row: v10 + fx (v11 - v10)
    v11 *= px
    v10 += v11
    v10 -= v00  # top + fy (bottom - top)
    v10 *= py
    v00 += v10
    v00 += np.float32(0.5)  # in [-tiny, 255 + tiny]: + 0.5 and truncation round half up
    return v00.astype(np.uint8)


def elastic_field(
    shape: tuple[int, int, int], alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Random smooth displacements (2, B, H, W) float32 as (dy, dx), in pixels, |d| <= alpha.

    U(-1, 1) per pixel and axis, smoothed by a Gaussian of `sigma` pixels (zero outside the
    image), times alpha: G_H @ noise @ G_W^T for each of the 2 B planes. The products are
    stacked matmuls of small matrices, which BLAS runs on one thread each: one large product
    (H, H) @ (H, 2 B W) was as fast alone but many times slower with a multithreaded BLAS on
    a busy machine.
    """
    b, h, w = shape
    noise = rng.random((2, b, h, w), dtype=np.float32)
    noise -= np.float32(0.5)  # U(-1/2, 1/2); the factor 2 goes into the smoothing matrix
    gh = gaussian_matrix(h, sigma) * np.float32(2.0 * alpha)
    field = np.matmul(gh, noise)  # smooth along H: (H, H) @ (2, B, H, W)
    return np.matmul(field, gaussian_matrix(w, sigma).T)  # along W: (2, B, H, W) @ (W, W)


@lru_cache(maxsize=16)
def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) float32 matrix G with (G @ f)[i] = sum_j g(i - j) f[j]: a 1-D convolution with
    the Gaussian g(k) ~ exp(-k^2 / (2 sigma^2)), |k| <= ceil(4 sigma), normalised to sum 1,
    values beyond the ends counting as 0. Read-only (cached)."""
    radius = math.ceil(4.0 * sigma)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (k / sigma) ** 2)
    kernel /= kernel.sum()
    offset = np.arange(n)[:, None] - np.arange(n)[None, :]  # i - j
    inside = np.abs(offset) <= radius
    g = np.where(inside, kernel[np.clip(offset + radius, 0, 2 * radius)], 0.0)
    g = g.astype(np.float32)
    g.flags.writeable = False
    return g


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        got = (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray)
               else type(images).__name__)
        raise DataError(f"augment: expected uint8 images (B, H, W), received {got}")
    if max(images.shape[1:]) > MAX_SIZE:
        raise DataError(f"augment: images may be at most {MAX_SIZE}x{MAX_SIZE} pixels, "
                        f"received {images.shape}")
