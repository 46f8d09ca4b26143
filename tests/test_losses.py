"""Tests of pianoeval.fusion.losses against hand-computed values on tiny tensors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pianoeval.fusion import losses as L

LN2, LN3 = math.log(2.0), math.log(3.0)

# A 2 x 2 case: residuals p - y = (0.2, 0.0, -0.3, 0.4), squares (0.04, 0, 0.09, 0.16).
P = torch.tensor([[0.5, 0.2], [0.1, 0.9]])
Y = torch.tensor([[0.3, 0.2], [0.4, 0.5]])


def approx(x, expected, tol=1e-6):
    return x.item() == pytest.approx(expected, abs=tol)


# --------------------------------------------------------------------------- point regression


def test_mse_hand_computed():
    # (0.04 + 0 + 0.09 + 0.16) / 4 = 0.29 / 4
    assert approx(L.mse(P, Y), 0.0725)


def test_mse_weights():
    # (B, 1) weights (1, 3) count once per dimension: (1*(0.04+0) + 3*(0.09+0.16)) / (2*1 + 2*3)
    assert approx(L.mse(P, Y, torch.tensor([[1.0], [3.0]])), 0.79 / 8)
    # (B, D) weights zeroing one element drop it: (0.04 + 0 + 0.09) / 3
    assert approx(L.mse(P, Y, torch.tensor([[1.0, 1.0], [1.0, 0.0]])), 0.13 / 3)
    # constant weights change nothing
    assert approx(L.mse(P, Y, torch.full((2, 2), 5.0)), 0.0725)


def test_huber_hand_computed():
    p, y = torch.tensor([[0.0, 3.0]]), torch.tensor([[0.5, 0.0]])
    # delta 1: r = -0.5 -> 0.5 * 0.25 = 0.125; r = 3 -> 1 * (3 - 0.5) = 2.5; mean 1.3125
    assert approx(L.huber(p, y), 1.3125)
    # delta 2: 0.125; r = 3 -> 2 * (3 - 1) = 4; mean 2.0625
    assert approx(L.huber(p, y, delta=2.0), 2.0625)
    # weight 0 on the outlier leaves the quadratic element alone
    assert approx(L.huber(p, y, weight=torch.tensor([[1.0, 0.0]])), 0.125)
    # within delta Huber is half the squared error
    assert approx(L.huber(P, Y), 0.0725 / 2)


def test_bootstrap_hand_computed_and_detached():
    p = P.clone().requires_grad_()
    # y' = 0.8 y + 0.2 p  ->  p - y' = 0.8 (p - y)  ->  loss = 0.64 * MSE = 0.64 * 0.0725
    loss = L.bootstrap(p, Y, beta=0.8)
    assert approx(loss, 0.64 * 0.0725)
    loss.backward()
    # p inside y' is detached: d/dp = 2 * 0.8 * (p - y) / 4, not 2 * 0.64 * (p - y) / 4
    torch.testing.assert_close(p.grad, 2 * 0.8 * (P - Y) / 4)
    assert approx(L.bootstrap(P, Y, beta=1.0), 0.0725)
    # weights as in test_mse_weights, scaled by 0.64
    assert approx(L.bootstrap(P, Y, weight=torch.tensor([[1.0], [3.0]])), 0.64 * 0.79 / 8)


def test_losses_mapping():
    assert L.LOSSES == {"mse": L.mse, "huber": L.huber, "bootstrap": L.bootstrap}


# --------------------------------------------------------------------------- ranking

RP = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
RY = torch.tensor([[0.8, 0.5], [0.2, 0.5], [0.5, 0.9]])
PAIRS = torch.tensor([[0, 1], [0, 2]])


def test_pairwise_ranking_ordered_misordered_tie():
    y = torch.tensor([[0.8], [0.2]])
    pair = torch.tensor([[0, 1]])
    assert approx(L.pairwise_margin_ranking(torch.tensor([[0.6], [0.3]]), y, pair), 0.0)
    # misordered: s = +1, p_0 - p_1 = -0.3 -> max(0, 0.3 + 0) = 0.3
    assert approx(L.pairwise_margin_ranking(torch.tensor([[0.3], [0.6]]), y, pair), 0.3)
    # margin 0.5 on the correctly ordered pair: max(0, -0.3 + 0.5) = 0.2
    assert approx(L.pairwise_margin_ranking(torch.tensor([[0.6], [0.3]]), y, pair, margin=0.5), 0.2)


def test_pairwise_ranking_hand_computed():
    # (0,1) d0: s=+1, p diff 0.3 -> max(0, -0.3 + m); (0,1) d1: tie, skipped
    # (0,2) d0: s=+1, p diff -0.3 -> max(0, 0.3 + m); (0,2) d1: s=-1, p diff 0.3 -> max(0, 0.3 + m)
    assert approx(L.pairwise_margin_ranking(RP, RY, PAIRS), (0 + 0.3 + 0.3) / 3)
    assert approx(L.pairwise_margin_ranking(RP, RY, PAIRS, margin=0.5), (0.2 + 0.8 + 0.8) / 3)
    # min_gap 0.35 drops (0,2) d0 (gap 0.3); left: (0,1) d0 -> 0, (0,2) d1 -> 0.3
    assert approx(L.pairwise_margin_ranking(RP, RY, PAIRS, min_gap=0.35), 0.15)


def test_pairwise_ranking_no_valid_pair_is_zero_with_graph():
    p = RP.clone().requires_grad_()
    loss = L.pairwise_margin_ranking(p, RY, torch.tensor([[1, 1]]))  # a pair with itself: ties
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))
    assert L.pairwise_margin_ranking(RP, RY, torch.zeros((0, 2), dtype=torch.long)).item() == 0.0


def test_tier_ranking_hand_computed():
    score = torch.tensor([2.0, 1.5, 0.0, 1.0])
    tiers = torch.tensor([0, 1, 3, 1])
    pairs = torch.tensor([[0, 1], [2, 1], [1, 3]])
    # (0,1): tier 0 < 1 -> max(0, 1 - (2 - 1.5)) = 0.5
    # (2,1): tier 3 > 1 -> swapped -> max(0, 1 - (1.5 - 0)) = 0
    # (1,3): equal tiers, skipped;  mean over 2 pairs = 0.25
    assert approx(L.tier_ranking(score, tiers, pairs), 0.25)
    # misordered: clean scores 0, severe scores 1 -> max(0, 1 - (0 - 1)) = 2
    assert approx(L.tier_ranking(torch.tensor([0.0, 1.0]), torch.tensor([0, 2]), torch.tensor([[0, 1]])), 2.0)
    assert approx(L.tier_ranking(torch.tensor([0.0, 1.0]), torch.tensor([2, 0]), torch.tensor([[0, 1]])), 0.0)
    assert L.tier_ranking(score, tiers, torch.tensor([[1, 3]])).item() == 0.0


# --------------------------------------------------------------------------- ordinal


def test_ordinal_levels_and_values():
    y = torch.tensor([[0.0, 0.24, 0.25, 0.999, 1.0, 1.2, -0.1]])
    assert L.ordinal_levels(y, 4).tolist() == [[0, 0, 1, 3, 3, 3, 0]]
    assert L.ordinal_levels(y, 4).dtype == torch.long
    torch.testing.assert_close(L.level_values(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    levels = torch.arange(5)
    torch.testing.assert_close(L.ordinal_to_value(levels.float(), 5), L.level_values(5))
    assert L.ordinal_to_value(1.25, 3) == pytest.approx(1.75 / 3)


def test_coral_hand_computed():
    # K = 3; element a: logits (0, ln 3), level 1 -> labels (1, 0):
    #   -(log s(0) + log(1 - s(ln 3))) / 2 = (ln 2 + ln 4) / 2 = 1.5 ln 2
    # element b: logits (0, 0), level 2 -> labels (1, 1): (ln 2 + ln 2) / 2 = ln 2
    logits = torch.tensor([[[0.0, LN3], [0.0, 0.0]]])
    levels = torch.tensor([[1, 2]])
    assert approx(L.coral_loss(logits, levels), (1.5 * LN2 + LN2) / 2)
    # weight (1, 3): (1.5 ln 2 + 3 ln 2) / 4
    assert approx(L.coral_loss(logits, levels, weight=torch.tensor([[1.0, 3.0]])), 4.5 * LN2 / 4)


def test_corn_hand_computed():
    # K = 3; element a: level 0, logits (ln 3, 0): task 0 label 0 -> -log(1/4) = ln 4; task 1 unused
    # element b: level 2, logits (0, ln 3): task 0 label 1 -> ln 2; task 1 label 1 -> ln(4/3)
    # mean over the 3 used entries
    logits = torch.tensor([[[LN3, 0.0], [0.0, LN3]]])
    levels = torch.tensor([[0, 2]])
    assert approx(L.corn_loss(logits, levels), (2 * LN2 + LN2 + (2 * LN2 - LN3)) / 3)
    # weight (2, 1): (2 * 2 ln 2 + ln 2 + ln(4/3)) / (2*1 + 1*2)
    expected = (4 * LN2 + LN2 + 2 * LN2 - LN3) / 4
    assert approx(L.corn_loss(logits, levels, weight=torch.tensor([[2.0, 1.0]])), expected)


def perfect_logits(levels, n_levels, scale=12.0):
    """+scale where y > k, -scale elsewhere: right for CORAL, and for every task CORN uses."""
    k = torch.arange(n_levels - 1)
    return torch.where(levels.unsqueeze(-1) > k, scale, -scale)


@pytest.mark.parametrize("loss", [L.coral_loss, L.corn_loss])
def test_ordinal_perfect_vs_reversed(loss):
    levels = torch.randint(0, 5, (8, 19), generator=torch.Generator().manual_seed(0))
    good = perfect_logits(levels, 5)
    assert loss(good, levels).item() < 1e-4
    assert loss(-good, levels).item() > 10.0


def test_expected_levels():
    logits = torch.tensor([[[0.0, LN3]]])
    # CORAL: s(0) + s(ln 3) = 0.5 + 0.75
    assert approx(L.coral_expected_level(logits), 1.25)
    # CORN: s(0) + s(0) s(ln 3) = 0.5 + 0.375
    assert approx(L.corn_expected_level(logits), 0.875)
    levels = torch.randint(0, 5, (4, 3), generator=torch.Generator().manual_seed(1))
    good = perfect_logits(levels, 5).float()
    torch.testing.assert_close(L.coral_expected_level(good), levels.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(L.corn_expected_level(good), levels.float(), atol=1e-4, rtol=0)
    assert L.coral_expected_level(good).shape == (4, 3)


def test_ordinal_validation():
    with pytest.raises(ValueError, match="levels must lie"):
        L.coral_loss(torch.zeros(1, 1, 2), torch.tensor([[3]]))
    with pytest.raises(ValueError, match="shape"):
        L.corn_loss(torch.zeros(2, 1, 2), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="integer"):
        L.coral_loss(torch.zeros(1, 1, 2), torch.tensor([[0.0]]))
    with pytest.raises(ValueError, match="n_levels"):
        L.ordinal_levels(torch.tensor([[0.5]]), 1)


# --------------------------------------------------------------------------- LDS


def test_lds_hand_computed_without_smoothing():
    # sigma 0, 10 bins: counts 3 (bin 5) and 1 (bin 0); power 1 -> 1/3, 1/3, 1/3, 1
    # mean (1 + 1) / 4 = 0.5 -> weights 2/3, 2/3, 2/3, 2
    y = np.array([0.5, 0.5, 0.5, 0.05])
    np.testing.assert_allclose(L.lds_weights(y, n_bins=10, sigma=0.0, power=1.0), [2 / 3, 2 / 3, 2 / 3, 2])
    # power 0.5: 3^-0.5, ..., 1 normalised
    w = np.array([3 ** -0.5] * 3 + [1.0])
    np.testing.assert_allclose(L.lds_weights(y, n_bins=10, sigma=0.0, power=0.5), w / w.mean())


def test_lds_rare_labels_weigh_more():
    rng = np.random.default_rng(0)
    y = np.column_stack([np.r_[rng.normal(0.5, 0.05, 200), [0.05, 0.95]],
                         np.r_[rng.uniform(0, 1, 200), [0.5, 0.5]]]).clip(0, 1)
    w = L.lds_weights(y)
    assert w.shape == y.shape
    np.testing.assert_allclose(w.mean(axis=0), [1.0, 1.0])
    assert w[-2:, 0].min() > w[:200, 0].max() * 0.999  # the two outliers outweigh the bulk
    assert w[-2:, 0].min() > 3 * np.median(w[:200, 0])
    np.testing.assert_array_equal(L.lds_weights(y, power=0.0), np.ones_like(y))


def test_lds_smoothing_borrows_from_neighbours():
    # one label in bin 4 beside 20 labels in bin 5, one label alone in bin 15:
    # equal raw counts, but after smoothing the neighbour of the crowd is denser -> lighter
    y = np.r_[np.full(20, 0.52), [0.42, 0.77]]
    w = L.lds_weights(y, n_bins=20, sigma=2.0, power=1.0)
    assert w[-2] < w[-1]
    w0 = L.lds_weights(y, n_bins=20, sigma=0.0, power=1.0)
    assert w0[-2] == pytest.approx(w0[-1])


def test_lds_validation():
    with pytest.raises(ValueError, match="NaN"):
        L.lds_weights(np.array([[0.1], [np.nan]]))
    with pytest.raises(ValueError, match="power"):
        L.lds_weights(np.array([[0.1]]), power=-1.0)


# --------------------------------------------------------------------------- weak labels


def test_weak_label_loss_matches_soft_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g)
    probs = torch.softmax(torch.randn(5, 4, generator=g), dim=1)
    torch.testing.assert_close(L.weak_label_loss(logits, probs), F.cross_entropy(logits, probs))
    # hand value: uniform logits -> log softmax = -ln 4 for every class, whatever p
    assert approx(L.weak_label_loss(torch.zeros(1, 4), torch.tensor([[0.7, 0.1, 0.1, 0.1]])), 2 * LN2)


def test_weak_label_loss_skips_unlabelled_rows():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 4, generator=g)
    probs = torch.softmax(torch.randn(4, 4, generator=g), dim=1)
    probs[1] = 0.0
    probs[3, 2] = float("nan")
    expected = F.cross_entropy(logits[[0, 2]], probs[[0, 2]])
    torch.testing.assert_close(L.weak_label_loss(logits, probs), expected)
    with pytest.raises(ValueError, match="sum to 1"):
        L.weak_label_loss(logits, torch.full((4, 4), 0.3))
    assert L.weak_label_loss(logits, torch.zeros(4, 4)).item() == 0.0


# --------------------------------------------------------------------------- validation, gradients


def test_validation_errors():
    with pytest.raises(ValueError, match="shape"):
        L.mse(P, Y[:1])
    with pytest.raises(ValueError, match="torch.Tensor"):
        L.mse(P.numpy(), Y)
    with pytest.raises(ValueError, match="weight must have shape"):
        L.mse(P, Y, torch.ones(2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        L.mse(P, Y, torch.tensor([[1.0], [-1.0]]))
    with pytest.raises(ValueError, match="sums to 0"):
        L.huber(P, Y, weight=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="delta"):
        L.huber(P, Y, delta=0.0)
    with pytest.raises(ValueError, match="beta"):
        L.bootstrap(P, Y, beta=1.5)
    with pytest.raises(ValueError, match="outside the batch"):
        L.pairwise_margin_ranking(RP, RY, torch.tensor([[0, -1]]))
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        L.tier_ranking(torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.tensor([[0, 1, 2]]))


def _grad_cases():
    levels = torch.tensor([[0, 2], [1, 1]])
    return {
        "mse": (lambda x: L.mse(x, Y, torch.tensor([[1.0], [2.0]])), (2, 2)),
        "huber": (lambda x: L.huber(x * 10, Y), (2, 2)),
        "bootstrap": (lambda x: L.bootstrap(x, Y), (2, 2)),
        "pairwise": (lambda x: L.pairwise_margin_ranking(x, RY, PAIRS, margin=1.0), (3, 2)),
        "tier": (lambda x: L.tier_ranking(x, torch.tensor([0, 1, 2]), torch.tensor([[0, 1], [2, 0]])), (3,)),
        "coral": (lambda x: L.coral_loss(x, levels), (2, 2, 2)),
        "corn": (lambda x: L.corn_loss(x, levels, weight=torch.ones(2, 1)), (2, 2, 2)),
        "weak": (lambda x: L.weak_label_loss(x, torch.tensor([[0.25] * 4, [0.0] * 4])), (2, 4)),
    }


@pytest.mark.parametrize("name", list(_grad_cases()))
def test_gradients_flow(name):
    fn, shape = _grad_cases()[name]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2)).requires_grad_()
    loss = fn(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
