"""Masked coordinate losses: masking, zeros, gradients, wing's formula and seed 001's CGD."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from facekeypoints.train.losses import complete_graph_distance, list_losses, make_loss

NAN = float("nan")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(seed: int = 0, b: int = 4, k: int = 15):
    """Random pred/target with some unlabelled keypoints (both coordinates NaN)."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(b, k, 2, generator=g) * 2 - 1
    target = torch.rand(b, k, 2, generator=g) * 2 - 1
    missing = torch.rand(b, k, generator=g) < 0.4
    target[missing] = NAN
    return pred.requires_grad_(), target


@pytest.mark.parametrize("name", list_losses())
def test_masked_target_value_changes_nothing(name):
    loss = make_loss(name)
    pred, target = _batch()
    target[0, 3] = torch.tensor([NAN, 0.5])  # x missing: the keypoint is unlabelled whatever y says
    other = target.clone()
    other[0, 3, 1] = -0.7
    a = loss(pred, target)
    (ga,) = torch.autograd.grad(a, pred)
    b = loss(pred, other)
    (gb,) = torch.autograd.grad(b, pred)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    unlabelled = ~torch.isfinite(target).all(-1)
    assert torch.all(ga[unlabelled] == 0), "unlabelled keypoints must receive no gradient"
    assert torch.isfinite(ga).all()


@pytest.mark.parametrize("name", list_losses())
def test_zero_when_prediction_equals_target_and_grads_finite(name):
    loss = make_loss(name)
    pred, target = _batch(1)
    exact = torch.where(torch.isfinite(target), target, pred.detach()).requires_grad_()
    value = loss(exact, target)
    (grad,) = torch.autograd.grad(value, exact)
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", list_losses())
def test_batch_without_labels_gives_zero_with_grad(name):
    pred = torch.rand(3, 5, 2, requires_grad=True)
    value = make_loss(name)(pred, torch.full((3, 5, 2), NAN))
    value.backward()
    assert value.item() == 0.0 and torch.equal(pred.grad, torch.zeros_like(pred))


def test_mse_l1_average_over_labelled_coordinates_only():
    pred, target = _batch(2)
    pred = pred.detach()
    p, t = pred.detach().numpy(), target.numpy()
    ok = np.isfinite(t)
    assert float(make_loss("mse")(pred, target)) == pytest.approx(np.mean((p[ok] - t[ok]) ** 2), rel=1e-5)
    assert float(make_loss("l1")(pred, target)) == pytest.approx(np.mean(np.abs(p[ok] - t[ok])), rel=1e-5)


def test_wing_matches_formula_and_is_continuous():
    w, eps = 0.2, 0.04
    c = w - w * math.log(1 + w / eps)
    x = torch.tensor([0.01, 0.1, 0.3, w - 1e-6, w + 1e-6])
    target = torch.zeros(1, len(x), 2)
    pred = torch.stack((x, torch.zeros_like(x)), -1).unsqueeze(0)
    expected = [w * math.log(1 + v / eps) if v < w else v - c for v in x.tolist()]
    for i, e in enumerate(expected):
        got = make_loss("wing")(pred[:, i:i + 1], target[:, i:i + 1])
        assert float(got) == pytest.approx(e / 2, rel=1e-5)  # mean over x and y (y error is 0)
    assert expected[3] == pytest.approx(expected[4], abs=1e-5)


def test_smooth_l1_quadratic_then_linear():
    beta = 0.02
    small, large = 0.01, 0.5
    pred = torch.tensor([[[small, large]]])
    value = make_loss("smooth_l1", beta=beta)(pred, torch.zeros(1, 1, 2))
    assert float(value) == pytest.approx((0.5 * small**2 / beta + (large - 0.5 * beta)) / 2, rel=1e-5)


def _cgd_reference(pred: np.ndarray, target: np.ndarray) -> float:
    """Explicit loops over faces and ordered keypoint pairs."""
    per_face = []
    for p, t in zip(pred, target):
        lab = [i for i in range(len(t)) if np.isfinite(t[i]).all()]
        if not lab:
            continue
        total = sum(abs(np.linalg.norm(t[i] - t[j]) - np.linalg.norm(p[i] - p[j]))
                    for i, j in itertools.permutations(lab, 2))
        per_face.append(total / len(lab))
    return float(np.mean(per_face)) if per_face else 0.0


def test_cgd_term_matches_loop_reference():
    pred, target = _batch(3)
    pred = pred.detach()
    target[1] = NAN  # a face with no labels is left out of the face average
    got = complete_graph_distance(pred, target)
    assert float(got) == pytest.approx(_cgd_reference(pred.detach().numpy(), target.numpy()), rel=1e-5)


def test_cgd_is_mse_plus_point_01_cgd_term():
    pred, target = _batch(4)
    pred = pred.detach()
    expected = make_loss("mse")(pred, target) + 0.01 * complete_graph_distance(pred, target)
    assert float(make_loss("cgd")(pred, target)) == pytest.approx(float(expected), rel=1e-6)
    assert float(make_loss("cgd", alpha=0.5)(pred, target)) == pytest.approx(
        float(make_loss("mse")(pred, target) + 0.5 * complete_graph_distance(pred, target)), rel=1e-6)


def test_cgd_term_invariant_to_joint_translation_not_to_shape_change():
    pred, target = _batch(5)
    pred = pred.detach()
    shift = torch.tensor([0.3, -0.2])
    base = complete_graph_distance(pred, target)
    assert float(complete_graph_distance(pred + shift, target + shift)) == pytest.approx(float(base), rel=1e-5)
    assert float(complete_graph_distance(pred + shift, target)) == pytest.approx(float(base), rel=1e-5)
    assert float(complete_graph_distance(pred * 1.5, target)) != pytest.approx(float(base), rel=1e-3)


def test_shape_mismatch_and_bad_names_are_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        make_loss("mse")(torch.zeros(2, 15, 2), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match=r"did you mean \['wing'\]"):
        make_loss("wign")
    with pytest.raises(TypeError, match="epsilon"):
        make_loss("wing", epsilom=0.1)
    with pytest.raises(TypeError, match="none"):
        make_loss("mse", beta=1.0)
