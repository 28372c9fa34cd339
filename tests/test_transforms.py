"""Preprocessing (uint8 -> float model input) and augmentation (keypoints move with the pixels)."""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from facekeypoints.data.augment import (Augment, _sampling_grid, augment_batch, mirror, mirror_keypoints, random_affine,
                                        warp_affine)
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.schema import load_schema

KAGGLE = load_schema("kaggle15")
NO_PHOTO = dict(brightness=0.0, contrast=0.0)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    return xs, ys


def _blobs(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(B, K, 2) points -> (B, K, size, size): channel k holds a Gaussian blob at keypoint k."""
    xs, ys = _grid(size)
    dx, dy = xs - keypoints[..., 0, None, None], ys - keypoints[..., 1, None, None]
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))


def _centroids(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2) intensity-weighted centroids (x, y)."""
    xs, ys = _grid(images.shape[-1])
    mass = images.sum((-1, -2))
    return torch.stack([(images * xs).sum((-1, -2)) / mass, (images * ys).sum((-1, -2)) / mass], -1)


def _mirrored(cfg: Augment, batch: int, size: int, seed: int) -> torch.Tensor:
    m = random_affine(cfg, batch, (size, size), torch.Generator().manual_seed(seed))
    return torch.linalg.det(m[:, :2, :2]) < 0


def _face_points(batch: int, seed: int) -> torch.Tensor:
    """Plausible kaggle15 faces on a 96 x 96 image: subject's left on the image's right."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([[66, 38], [30, 38], [59, 38], [73, 38], [37, 38], [23, 38], [56, 29], [79, 30],
                         [40, 29], [16, 30], [48, 57], [63, 76], [32, 76], [48, 72], [48, 82]], dtype=torch.float32)
    return base + 2 * torch.rand(batch, 15, 2, generator=g) - 1


# ---- preprocessing ---------------------------------------------------------------------------------
def test_preprocess_shapes_and_unit_scale():
    pre = Preprocess(size=32)
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    gray[0, 0, 0], gray[0, 0, 1] = 0, 255
    out = pre(gray)
    assert out.shape == (5, 1, 32, 32) and out.dtype == np.float32 and out.flags.c_contiguous
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[:, 0], gray / 255.0, atol=1e-7)
    assert pre(gray[2]).shape == (1, 1, 32, 32)
    np.testing.assert_array_equal(pre(list(gray)), out)
    np.testing.assert_array_equal(pre(gray), out)  # deterministic


def test_preprocess_centered_scale_and_value_range():
    pre = Preprocess(size=16, scale="centered")
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = pre(img)
    assert (out.min(), out.max()) == pre.value_range == (-0.5, 0.5)
    np.testing.assert_allclose(out, Preprocess(size=16)(img) - 0.5, atol=1e-7)


def test_preprocess_rgb_to_gray_and_gray_to_rgb():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    gray = Preprocess(size=24)(rgb)
    expected = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in rgb]) / 255.0
    np.testing.assert_allclose(gray[:, 0], expected, atol=1e-7)
    assert Preprocess(size=24)(rgb[0]).shape == (1, 1, 24, 24)  # a single RGB image
    colour = Preprocess(size=24, channels=3)(rgb)
    np.testing.assert_allclose(colour, rgb.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    replicated = Preprocess(size=24, channels=3)(rgb[:, :, :, 0])
    assert replicated.shape == (3, 3, 24, 24)
    assert (replicated[:, 0] == replicated[:, 1]).all() and (replicated[:, 0] == replicated[:, 2]).all()


def _low_contrast(size: int = 96) -> np.ndarray:
    """Smooth texture squeezed into about 100..125 (std ~3 grey levels)."""
    noise = cv2.GaussianBlur(np.random.default_rng(0).normal(0, 1, (size, size)), (0, 0), 3)
    return (110 + 15 * noise / np.abs(noise).max()).astype(np.uint8)


def test_clahe_spreads_a_low_contrast_histogram():
    img = _low_contrast()
    plain = Preprocess()(img)[0, 0] * 255
    eq = Preprocess(clahe=True)(img)[0, 0] * 255
    assert np.ptp(plain) < 30
    assert np.ptp(eq) > 3 * np.ptp(plain) and eq.std() > 3 * plain.std()  # measured: 147 vs 25, 12.3 vs 3.0
    expected = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(img)
    np.testing.assert_allclose(eq, expected, atol=1e-4)


def test_clahe_on_rgb_equalises_lightness_only():
    img = np.repeat(_low_contrast()[..., None], 3, axis=-1)
    out = Preprocess(channels=3, clahe=True)(img)[0]
    assert np.ptp(out) * 255 > 3 * np.ptp(img)
    # a grey image stays (nearly) grey: Lab keeps a and b, only lightness changes
    assert np.abs(out[0] - out[1]).max() * 255 <= 2 and np.abs(out[0] - out[2]).max() * 255 <= 2


@pytest.mark.parametrize("shape", [(2, 48, 96), (96, 48), (1, 97, 97, 3)])
def test_preprocess_rejects_other_sizes(shape):
    with pytest.raises(ValueError, match=r"does not crop or resize") as err:
        Preprocess(size=96)(np.zeros(shape, np.uint8))
    assert "96x96" in str(err.value)


def test_preprocess_rejects_bad_input_and_settings():
    with pytest.raises(ValueError, match="uint8"):
        Preprocess(size=8)(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="different shapes"):
        Preprocess(size=8)([np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8)])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        Preprocess(size=8)(np.zeros((2, 8, 8, 4), np.uint8))
    for bad in (dict(size=0), dict(channels=2), dict(scale="imagenet"), dict(clahe_clip=0), dict(clahe_grid=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Preprocess(**bad)


def test_preprocess_dict_round_trip():
    pre = Preprocess(size=64, channels=3, scale="centered", clahe=True, clahe_clip=3.0, clahe_grid=4)
    d = json.loads(json.dumps(pre.to_dict()))
    assert Preprocess.from_dict(d) == pre
    with pytest.raises(ValueError, match=r"did you mean \['preprocess.clahe_clip'"):
        Preprocess.from_dict({"clahe_clipp": 2.0})


def test_preprocess_needs_neither_torch_nor_training_code():
    """Inference through onnxruntime uses Preprocess, so its module imports only numpy, OpenCV, stdlib."""
    import facekeypoints.data.preprocess as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "cv2", "numpy", "facekeypoints.settings"}, imported


# ---- geometry: keypoints move exactly with the pixels ------------------------------------------------
def test_keypoints_land_where_their_pixels_went():
    """Exact check of the matrix convention: warp images whose values ARE their own coordinates.

    Bilinear interpolation reproduces linear functions exactly, so in the interior the warped ramp
    at a transformed keypoint must read back the keypoint's original coordinates.
    """
    size, batch = 64, 64
    xs, ys = _grid(size)
    ramps = torch.stack([xs, ys])[None].expand(batch, 2, size, size).float()
    g = torch.Generator().manual_seed(3)
    points = 20 + 24 * torch.rand(batch, 1, 2, generator=g)
    schema = load_schema("nose1")
    out, moved = augment_batch(ramps, points, schema, Augment(**NO_PHOTO), torch.Generator().manual_seed(4))
    grid = (2 * moved + 1) / size - 1  # pixel -> grid_sample coordinates (align_corners=False)
    read = torch.nn.functional.grid_sample(out, grid[:, :, None], align_corners=False)[..., 0, 0]
    assert (moved.min() > 1) and (moved.max() < size - 2)  # interior, so no border padding is read
    torch.testing.assert_close(read, points[:, 0], atol=1e-3, rtol=0)
    assert _mirrored(Augment(**NO_PHOTO), batch, size, 4).any()


@pytest.mark.parametrize("cfg, tol", [
    (Augment(scale=(1.0, 1.0), **NO_PHOTO), 0.01),  # mirror, rotation, shift: measured max 0.002 px
    (Augment(shift=0.05, **NO_PHOTO), 0.05),  # + scale 0.9-1.1: measured max 0.025 px
])
def test_blob_centroids_follow_keypoints(cfg, tol):
    """Each keypoint gets a Gaussian blob (sigma 2 px) in its own channel; the blob's centroid after
    the warp must sit on the transformed keypoint. Rotation, mirror and shift keep it within 0.01
    px. Zooming resamples the bilinear (piecewise-linear, kinked) image on a grid of another pitch;
    that aliasing moves a sigma-2 blob's centroid by up to ~0.025 px (0.006 px at sigma 4), zero
    at the image centre, so that case is checked at 0.05 px."""
    batch, size = 24, 96
    g = torch.Generator().manual_seed(11)
    points = 34 + 28 * torch.rand(batch, KAGGLE.num_keypoints, 2, generator=g, dtype=torch.float64)
    out, moved = augment_batch(_blobs(points, size, 2.0), points, KAGGLE, cfg, torch.Generator().manual_seed(5))
    flipped = _mirrored(cfg, batch, size, 5)
    assert flipped.any() and not flipped.all()
    # channel c is keypoint c's blob; in a mirrored sample its label is now flip_index[c]
    expected = torch.where(flipped[:, None, None], moved[:, list(KAGGLE.flip_index)], moved)
    err = (_centroids(out) - expected).abs().max().item()
    assert err < tol, f"centroid off by {err:.4f} px"
    assert (expected - points).abs().max() > 1  # the points really moved


def test_sampling_grid_is_affine_grid():
    theta = torch.randn(5, 2, 3, dtype=torch.float64)
    for h, w in ((96, 96), (7, 12)):
        ours = _sampling_grid(theta.numpy(), h, w, theta)
        torch.testing.assert_close(ours, torch.nn.functional.affine_grid(theta, [5, 1, h, w], align_corners=False))


def test_positive_rotation_is_clockwise_on_screen():
    size = 9
    image = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    c = (size - 1) / 2
    quarter = torch.tensor([[[0.0, -1, 2 * c], [1, 0, 0], [0, 0, 1]]], dtype=torch.float64)
    turned, kp = warp_affine(image, torch.tensor([[[0.0, 0.0]]]), quarter, load_schema("nose1"))
    torch.testing.assert_close(turned, torch.rot90(image, -1, dims=(-2, -1)), atol=1e-4, rtol=0)
    assert kp.tolist() == [[[size - 1, 0.0]]]  # top-left corner goes to the top-right
    cfg = Augment(flip_prob=0, rotate_deg=90, shift=0, scale=(1, 1))
    m = random_affine(cfg, 200, (size, size), torch.Generator().manual_seed(0))
    angles = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    assert angles.abs().max() <= 90 and angles.min() < -60 and angles.max() > 60


def test_turns_and_zooms_about_the_image_centre_and_flips_like_mirror():
    centre = torch.full((32, 1, 2), 47.5)
    cfg = Augment(shift=0, **NO_PHOTO)
    _, moved = augment_batch(torch.rand(32, 1, 96, 96), centre, load_schema("nose1"), cfg,
                             torch.Generator().manual_seed(0))
    torch.testing.assert_close(moved, centre, atol=1e-5, rtol=0)
    images, faces = torch.rand(4, 1, 96, 96), _face_points(4, 5)
    flip_only = Augment(flip_prob=1.0, rotate_deg=0, shift=0, scale=(1, 1), **NO_PHOTO)
    warped, kp = augment_batch(images, faces, KAGGLE, flip_only, torch.Generator().manual_seed(0))
    exact_images, exact_kp = mirror(images, faces, KAGGLE)
    torch.testing.assert_close(kp, exact_kp, atol=1e-5, rtol=0)
    torch.testing.assert_close(warped, exact_images, atol=1e-5, rtol=0)


def test_points_pushed_outside_are_kept_not_clipped():
    cfg = Augment(flip_prob=0, rotate_deg=0, shift=0.5, scale=(1, 1), **NO_PHOTO)
    points = torch.tensor([[[2.0, 3.0]], [[60.0, 61.0]]]).repeat(8, 1, 1)
    _, moved = augment_batch(torch.rand(16, 1, 64, 64), points, load_schema("nose1"), cfg,
                             torch.Generator().manual_seed(2))
    outside = (moved < -0.5) | (moved > 63.5)
    assert outside.any()
    m = random_affine(cfg, 16, (64, 64), torch.Generator().manual_seed(2))
    torch.testing.assert_close(moved, points + m[:, None, :2, 2].float(), atol=1e-4, rtol=0)


# ---- mirroring and left/right labels -----------------------------------------------------------------
def test_mirror_twice_is_identity():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 96, 96, generator=g)
    on_grid = torch.round(_face_points(4, 0) * 256) / 256  # exactly representable after 95 - x
    once_img, once_kp = mirror(images, on_grid, KAGGLE)
    twice_img, twice_kp = mirror(once_img, once_kp, KAGGLE)
    assert torch.equal(twice_img, images) and torch.equal(twice_kp, on_grid)
    assert not torch.equal(once_img, images)
    # arbitrary float32 coordinates: 95 - x rounds, so equality is to float32 precision at x ~ 95
    arbitrary = _face_points(4, 1)
    back = mirror_keypoints(mirror_keypoints(arbitrary, KAGGLE, 96), KAGGLE, 96)
    assert (back - arbitrary).abs().max() <= 2 * torch.finfo(torch.float32).eps * 96


def test_mirror_keeps_left_labels_on_the_image_right():
    faces = _face_points(8, 2)
    left, right = KAGGLE.index("left_eye_center"), KAGGLE.index("right_eye_center")
    mouth_left = KAGGLE.index("mouth_left_corner")
    for _, kp in (mirror(torch.rand(8, 1, 96, 96), faces, KAGGLE),
                  augment_batch(torch.rand(8, 1, 96, 96), faces, KAGGLE, Augment(flip_prob=1.0, rotate_deg=5),
                                torch.Generator().manual_seed(1))):
        assert (kp[:, left, 0] > 47.5).all() and (kp[:, right, 0] < 47.5).all()
        assert (kp[:, mouth_left, 0] > 47.5).all()
    _, plain = mirror(torch.rand(8, 1, 96, 96), faces, KAGGLE)
    # the subject's left eye is where the mirror image of the right eye went
    torch.testing.assert_close(plain[:, left], torch.stack([95 - faces[:, right, 0], faces[:, right, 1]], -1))
    np.testing.assert_allclose(mirror_keypoints(faces.numpy(), KAGGLE, 96), KAGGLE.flip(faces.numpy(), 96))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), missing=st.lists(st.integers(0, 14), max_size=15))
def test_missing_keypoints_stay_missing(seed, missing):
    points = _face_points(4, seed % 1000)
    points[:, missing] = float("nan")
    points[0, 0, 1] = float("nan")  # half-missing point: both coordinates come back missing
    was_missing = points.isnan().any(-1)
    for cfg in (Augment(), Augment(flip_prob=0.0, rotate_deg=0, shift=0, scale=(1, 1))):
        _, moved = augment_batch(torch.rand(4, 1, 96, 96), points, KAGGLE, cfg, torch.Generator().manual_seed(seed))
        flipped = _mirrored(cfg, 4, 96, seed)
        expected = torch.where(flipped[:, None], was_missing[:, list(KAGGLE.flip_index)], was_missing)
        assert moved.shape == points.shape
        assert torch.equal(moved.isnan().all(-1), expected) and torch.equal(moved.isnan().any(-1), expected)
    _, mirrored = mirror(torch.rand(4, 1, 96, 96), points, KAGGLE)
    assert torch.equal(mirrored.isnan(), points.isnan()[:, list(KAGGLE.flip_index)])


# ---- randomness, photometric, configuration -----------------------------------------------------------
def test_same_seed_same_result_and_inputs_untouched():
    images, points = torch.rand(8, 1, 96, 96), _face_points(8, 3)
    keep_images, keep_points = images.clone(), points.clone()
    cfg = Augment(noise_std=0.1)
    a = augment_batch(images, points, KAGGLE, cfg, torch.Generator().manual_seed(7))
    b = augment_batch(images, points, KAGGLE, cfg, torch.Generator().manual_seed(7))
    c = augment_batch(images, points, KAGGLE, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert torch.equal(images, keep_images) and torch.equal(points, keep_points)


def test_brightness_and_contrast_ranges():
    images = torch.full((64, 1, 8, 8), 0.4)
    images[:, :, :4] = 0.6
    points = torch.zeros(64, 1, 2)
    nose = load_schema("nose1")
    bright, _ = augment_batch(images, points, nose, Augment(flip_prob=0, rotate_deg=0, shift=0, scale=(1, 1),
                                                            brightness=0.5, contrast=0),
                              torch.Generator().manual_seed(0))
    ratio = bright / images
    assert torch.allclose(ratio, ratio[:, :, :1, :1])  # one factor per image
    assert ratio.min() >= 0.5 and ratio.max() <= 1.5 and ratio.min() < 0.6 and ratio.max() > 1.4
    contrasted, _ = augment_batch(images, points, nose, Augment(flip_prob=0, rotate_deg=0, shift=0, scale=(1, 1),
                                                                brightness=0, contrast=0.3),
                                  torch.Generator().manual_seed(0))
    torch.testing.assert_close(contrasted.mean((1, 2, 3)), images.mean((1, 2, 3)))
    spread = (contrasted[:, 0, 0, 0] - contrasted[:, 0, -1, 0]) / 0.2
    assert spread.min() >= 0.7 - 1e-5 and spread.max() <= 1.3 + 1e-5 and spread.max() - spread.min() > 0.4


def test_centered_scale_gets_the_same_photometric_change():
    images, points = torch.rand(6, 1, 32, 32), torch.zeros(6, 1, 2)
    cfg, nose = Augment(noise_std=0.05), load_schema("nose1")
    unit, _ = augment_batch(images, points, nose, cfg, torch.Generator().manual_seed(1))
    centred, _ = augment_batch(images - 0.5, points, nose, cfg, torch.Generator().manual_seed(1),
                               value_range=(-0.5, 0.5))
    torch.testing.assert_close(centred, unit - 0.5, atol=1e-5, rtol=0)
    assert centred.min() >= -0.5 and centred.max() <= 0.5


def test_seed_noise_is_strong():
    cfg = Augment(flip_prob=0, rotate_deg=0, shift=0, scale=(1, 1), brightness=0, contrast=0,
                  noise_std=math.sqrt(0.1))  # seed 001: variance 0.1 on the [0, 1] scale
    out, _ = augment_batch(torch.full((4, 1, 96, 96), 0.5), torch.zeros(4, 1, 2), load_schema("nose1"), cfg,
                           torch.Generator().manual_seed(0))
    assert 0.25 < (out - 0.5).std() < 0.32  # clamping to [0, 1] trims the tails of std 0.316


def test_colour_jitter_rgb_only():
    g = torch.Generator().manual_seed(0)
    cfg = Augment(flip_prob=0, rotate_deg=0, shift=0, scale=(1, 1), brightness=0, contrast=0, color_jitter=0.4)
    nose = load_schema("nose1")
    colour = 0.3 + 0.4 * torch.rand(8, 3, 16, 16, generator=g)
    jittered, _ = augment_batch(colour, torch.zeros(8, 1, 2), nose, cfg, torch.Generator().manual_seed(1))
    assert (jittered - colour).abs().max() > 0.02
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((jittered * luma).sum(1), (colour * luma).sum(1), atol=1e-4, rtol=0)
    grey = colour[:, :1].expand(8, 3, 16, 16)
    still_grey, _ = augment_batch(grey, torch.zeros(8, 1, 2), nose, cfg, torch.Generator().manual_seed(1))
    torch.testing.assert_close(still_grey, grey, atol=1e-5, rtol=0)
    one_channel = colour[:, :1]
    same, _ = augment_batch(one_channel, torch.zeros(8, 1, 2), nose, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(same, one_channel)  # documented: colour jitter is a no-op on grayscale


def test_augment_rejects_bad_input_and_settings():
    images = torch.rand(2, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"\(2, 15, 2\).*kaggle15"):
        augment_batch(images, torch.zeros(2, 14, 2), KAGGLE, Augment(), g)
    with pytest.raises(ValueError, match="float tensor"):
        augment_batch(images.to(torch.uint8), torch.zeros(2, 15, 2), KAGGLE, Augment(), g)
    with pytest.raises(TypeError, match="torch.Generator"):
        augment_batch(images, torch.zeros(2, 15, 2), KAGGLE, Augment(), 0)
    for bad in (dict(flip_prob=1.5), dict(rotate_deg=-1), dict(scale=(1.1, 0.9)), dict(brightness=2.0),
                dict(padding="reflect"), dict(noise_std=-0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Augment(**bad)


def test_augment_dict_round_trip():
    cfg = Augment(scale=(0.8, 1.2), noise_std=0.316, padding="zeros")
    assert Augment.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"did you mean \['augment.rotate_deg'"):
        Augment.from_dict({"rotate_degs": 10})
