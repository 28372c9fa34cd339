"""The detector of our own (issue 11): mosaics, targets, decoding, training that resumes, the ONNX detector."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facekeypoints.infer.detectors import CnnDetector, decode_centers, make_detector
from facekeypoints.models.face_detector import STRIDE, FaceCenterNet, center_targets, detection_loss
from facekeypoints.train.detector import CANVAS, FacePool, export_detector, mosaic, train_detector
from fakes import make_faces


@pytest.fixture(scope="module")
def pool() -> FacePool:
    """Generated faces on a textured background, each photo 96 x 96 with its landmark box."""
    faces = make_faces(12, missing=False)
    images = [np.repeat(im[..., None], 3, axis=2) for im in faces.images]
    boxes = np.array([np.r_[k.min(0), k.max(0) + 1] for k in faces.keypoints])
    return FacePool(images, boxes)


def test_mosaics_hold_labelled_faces_inside_the_canvas(pool):
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(20):
        image, faces, ignored = mosaic(pool, rng)
        assert image.shape == (*CANVAS, 3) and image.dtype == np.uint8
        assert faces.shape[1] == 4 and ignored.shape[1] == 4
        centres = (faces[:, :2] + faces[:, 2:]) / 2
        assert ((centres >= 0) & (centres <= [CANVAS[1], CANVAS[0]])).all()
        counts.append(len(faces))
    assert max(counts) >= 3 and min(counts) >= 1  # several faces per image, at least the background's


def test_targets_peak_at_each_face_centre_with_its_size():
    box = np.array([[40.0, 20.0, 80.0, 72.0]])
    t = center_targets([box], 96, 128, ignore=[np.array([[0.0, 0.0, 16.0, 16.0]])])
    iy, ix = int(46 / STRIDE), int(60 / STRIDE)
    assert t["heat"][0, 0, iy, ix] == 1.0 and t["mask"].sum() == 1
    assert np.allclose(np.exp(t["size"][0, :, iy, ix]) * STRIDE, [40, 52])
    assert t["weight"][0, 0, 0, 0] == 0 and t["weight"][0, 0, iy, ix] == 1


def test_decoding_perfect_maps_gives_the_boxes_back():
    boxes = np.array([[40.0, 20.0, 80.0, 72.0], [100.0, 60.0, 118.0, 82.0]])
    t = center_targets([boxes], 96, 128)
    logits = np.where(t["heat"][0, 0] == 1.0, 8.0, -8.0)
    found = decode_centers(logits, t["size"][0], t["offset"][0], 0.5, STRIDE)
    order = np.argsort(found[:, 0])
    assert np.allclose(found[order, :4], boxes, atol=1e-3)


def test_the_loss_falls_when_the_network_fits_one_batch(pool):
    torch.manual_seed(0)
    net = FaceCenterNet()
    rng = np.random.default_rng(1)
    small = (96, 128)  # the network takes any multiple of 16; small keeps the test fast
    samples = [mosaic(pool, rng, size=small) for _ in range(4)]
    x = torch.from_numpy((np.stack([s[0] for s in samples]).transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5)
    targets = {k: torch.from_numpy(v) for k, v in center_targets([s[1] for s in samples], *small,
                                                                 ignore=[s[2] for s in samples]).items()}
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = detection_loss(net(x), targets).item()
    for _ in range(30):
        loss = detection_loss(net(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_training_resumes_and_exports_a_detector_that_runs(pool, tmp_path):
    first = train_detector(tmp_path, pool, minutes=0.02, batch_size=2, save_every=1, progress=False, workers=0)
    assert first["steps"] >= 1 and (tmp_path / "face_detector.onnx").is_file()
    again = train_detector(tmp_path, pool, minutes=first["minutes"] + 0.02, batch_size=2, save_every=1,
                           progress=False, workers=0)
    assert again["steps"] > first["steps"]  # continued from last.pt, not restarted
    detector = CnnDetector(tmp_path / "face_detector.onnx", threshold=0.01)
    for image in (np.zeros((480, 640, 3), np.uint8), np.zeros((50, 70), np.uint8)):
        boxes = detector.detect(image)
        assert boxes.ndim == 2 and boxes.shape[1] == 5 and np.isfinite(boxes).all()


def test_distractors_add_unlabelled_patches_that_are_not_faces(pool):
    """With distractors the mosaics hold more pasted pixels but no more labelled faces than the same
    draws without: the patches are background to the loss."""
    plain = [mosaic(pool, np.random.default_rng(seed)) for seed in range(12)]
    with_patches = [mosaic(pool, np.random.default_rng(seed), distractors=6) for seed in range(12)]
    # the same draws until the distractors: a face stays labelled unless a patch hides most of it
    assert all(len(b[1]) <= len(a[1]) for a, b in zip(plain, with_patches))
    assert sum(not np.array_equal(a[0], b[0]) for a, b in zip(plain, with_patches)) >= 8  # patches were pasted


def test_a_distractor_keeps_skin_but_loses_the_face_layout(pool):
    from facekeypoints.train.detector import _distractor

    rng = np.random.default_rng(3)
    patches = [_distractor(pool, rng) for _ in range(40)]
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 and min(p.shape[:2]) >= 4 for p in patches)
    assert len({p.shape for p in patches}) > 3  # tiles of whole faces and parts of faces of several sizes


def test_fine_tuning_starts_from_another_runs_weights_and_keeps_its_recipe(pool, tmp_path):
    from facekeypoints.train.detector import check_run

    base = tmp_path / "base"
    train_detector(base, pool, minutes=0.01, batch_size=2, save_every=1, progress=False, workers=0)
    start = torch.load(base / "last.pt", weights_only=True)["model"]
    tuned = tmp_path / "tuned"
    train_detector(tuned, pool, minutes=0.01, batch_size=2, save_every=1, progress=False, workers=0, distractors=2,
                   init=base / "last.pt")
    state = torch.load(tuned / "last.pt", weights_only=True)
    assert state["distractors"] == 2
    # one or a few small steps from the base weights, far closer to them than a fresh network is
    fresh = FaceCenterNet().state_dict()
    key = next(k for k, v in start.items() if v.dtype.is_floating_point and v.numel() > 100)
    assert (state["model"][key] - start[key]).abs().mean() < 0.5 * (fresh[key] - start[key]).abs().mean()
    with pytest.raises(ValueError, match="started with --distractors 2, now 0"):
        check_run(tuned, distractors=0)
    with pytest.raises(ValueError, match="--distractors must be 0..12"):
        check_run(tmp_path / "other", distractors=-1)
    with pytest.raises(ValueError, match="--init .*no such file"):
        check_run(tmp_path / "other", init=tmp_path / "missing.pt")
    (tmp_path / "not.pt").write_text("text")
    with pytest.raises(ValueError, match="not.pt: cannot be read"):
        check_run(tmp_path / "other", init=tmp_path / "not.pt")


def test_an_untrained_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no face detector model here"):
        CnnDetector(tmp_path / "none.onnx")
    net = FaceCenterNet()
    export_detector(net, tmp_path / "d.onnx")
    with pytest.raises(ValueError, match="threshold in"):
        CnnDetector(tmp_path / "d.onnx", threshold=1.5)


def test_the_registry_knows_the_cnn_detector():
    try:
        detector = make_detector("cnn")
    except ValueError as err:  # not shipped in this checkout: the message says how to get one
        assert "train-detector" in str(err)
    else:
        assert isinstance(detector, CnnDetector)


def test_min_face_scales_a_large_photo_up_enough(tmp_path):
    export_detector(FaceCenterNet(), tmp_path / "d.onnx")
    seen = []
    for min_face in (None, 20):
        detector = CnnDetector(tmp_path / "d.onnx", min_face=min_face)
        run = detector.session.run
        detector.session.run = lambda names, feed, run=run: seen.append(feed["image"].shape) or run(names, feed)
        detector.detect(np.zeros((1000, 2000, 3), np.uint8))
    assert seen[0][2:] == (240, 480) and seen[1][2:] == (128, 240)  # longer side 480, and the coarse pass
    assert seen[2][2:] == (800, 1600)  # 20 px faces become 16 px, the smallest it finds


def test_detector_sizing_options_are_for_haar_and_cnn_only(capsys):
    from facekeypoints.cli import main

    assert main(["predict", "x.jpg", "--detector", "dlib", "--min-face", "20"]) == 2
    assert "--min-face and --max-side apply to the haar and cnn detectors" in capsys.readouterr().err


def test_the_shipped_detector_is_in_the_package_and_finds_the_demo_face():
    """``--detector cnn`` works from a fresh clone: the weights are part of the package, not only of
    the machine they were trained on (a .gitignore rule once kept them out of git)."""
    import cv2
    from matplotlib import cbook

    image = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB)
    boxes = CnnDetector().detect(image)
    assert len(boxes) >= 1 and boxes[0][4] >= 0.5
