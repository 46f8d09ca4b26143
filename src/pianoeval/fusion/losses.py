"""Loss functions for the perceptual-rating regressors and their auxiliary heads.

Pure functions, one per loss, in the style of ``mir_eval``: every function validates its
inputs and raises ``ValueError`` with a message naming the problem. Predictions and labels are
``torch`` tensors of shape ``(B, D)``: ``B`` segments in the batch by ``D`` perceptual
dimensions (19 in this project; labels are Likert means / 7, so they lie in [0, 1]).

Point-regression losses take an optional per-element ``weight`` of shape ``(B, D)`` or ``(B, 1)``
(e.g. the LDS weights of :func:`lds_weights`) and reduce by the weighted mean over all
elements, ``sum(w * l) / sum(w)``; without weights that is the plain mean.

Shapes, dtypes and the values of auxiliary inputs (weights, ordinal levels, pair indices, soft
labels) are checked: a bad value there silently yields a wrong but finite loss. The values of
``pred`` and ``target`` are not scanned for NaN: a NaN there shows up as a NaN loss anyway, and
the scan would cost a device synchronisation on every step.

:func:`lds_weights` is the one NumPy function: it runs once, on the training labels.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d

# Soft labels (Snorkel's ``predict_proba``) are stored as float32 or rounded in tables; rows
# within this distance of 1 count as normalised.
_PROB_SUM_ATOL = 1e-3


# --------------------------------------------------------------------------- validation


def _check_tensor(x, name: str, ndim: int | None = None, floating: bool | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}")
    if floating is True and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if floating is False and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor, got {x.dtype}")


def _check_pair(pred, target) -> None:
    _check_tensor(pred, "pred", ndim=2, floating=True)
    _check_tensor(target, "target", ndim=2, floating=True)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}")


def _check_finite_number(value, name: str, low: float | None = None, high: float | None = None,
                         low_open: bool = False) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")


def _check_n_levels(n_levels) -> None:
    if not isinstance(n_levels, numbers.Integral) or isinstance(n_levels, bool) or n_levels < 2:
        raise ValueError(f"n_levels must be an integer >= 2, got {n_levels!r}")


def _weighted_mean(loss: torch.Tensor, weight) -> torch.Tensor:
    """``sum(w * loss) / sum(w)`` over all elements of ``loss`` (B, D); plain mean if no weight."""
    if weight is None:
        return loss.mean()
    _check_tensor(weight, "weight", ndim=2, floating=True)
    B, D = loss.shape
    if weight.shape not in ((B, D), (B, 1)):
        raise ValueError(f"weight must have shape ({B}, {D}) or ({B}, 1), got {tuple(weight.shape)}")
    # A (B, 1) weight counts once per dimension, so expand before summing the denominator.
    w = weight.to(dtype=loss.dtype, device=loss.device).expand(B, D)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("weight must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError("weight sums to 0: no element would count")
    return (w * loss).sum() / total


# --------------------------------------------------------------------------- point regression


def mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error: ``sum_ij w_ij (p_ij - y_ij)^2 / sum_ij w_ij`` (``w = 1`` if no weight)."""
    _check_pair(pred, target)
    return _weighted_mean((pred - target) ** 2, weight)


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0,
          weight: torch.Tensor | None = None) -> torch.Tensor:
    """Huber loss, weighted mean over elements of ``h(p_ij - y_ij)`` with

    ``h(r) = 0.5 r^2`` if ``|r| <= delta``, else ``delta * (|r| - 0.5 delta)``

    (``torch.nn.functional.huber_loss``: quadratic near 0, linear in the tails, continuous
    first derivative at ``|r| = delta``). ``delta`` is in the units of ``target`` as the caller
    passes it; the training loop standardises every dimension, so ``delta = 1`` is one
    training-label standard deviation.
    """
    _check_pair(pred, target)
    _check_finite_number(delta, "delta", low=0.0, low_open=True)
    return _weighted_mean(F.huber_loss(pred, target, reduction="none", delta=float(delta)), weight)


def bootstrap(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.8,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Soft bootstrapping (Reed et al. 2015), regression analogue: MSE to a blended target

    ``y'_ij = beta * y_ij + (1 - beta) * stopgrad(p_ij)``,  loss = weighted mean of ``(p_ij - y'_ij)^2``.

    Reed et al. blend a noisy one-hot label with the model's own softmax and take the
    cross-entropy; here the label is a continuous rating, so the blend is of values and the
    cross-entropy becomes the squared error. The prediction in the target is detached, so the
    gradient is ``2 beta (p - y) / N`` (unweighted): the label's pull is shrunk by ``beta``,
    which limits how far noisy ratings drag the fit, and ``beta = 1`` is plain MSE.
    """
    _check_pair(pred, target)
    _check_finite_number(beta, "beta", low=0.0, high=1.0)
    blended = beta * target + (1.0 - beta) * pred.detach()
    return _weighted_mean((pred - blended) ** 2, weight)


LOSSES = {"mse": mse, "huber": huber, "bootstrap": bootstrap}


# --------------------------------------------------------------------------- ranking


def _check_pairs(pairs, n: int) -> None:
    _check_tensor(pairs, "pairs", ndim=2, floating=False)
    if pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (P, 2), got {tuple(pairs.shape)}")
    # Negative indices would silently wrap around to the end of the batch.
    if pairs.numel() and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pairs index rows outside the batch of {n}")


def pairwise_margin_ranking(pred: torch.Tensor, target: torch.Tensor, pairs: torch.Tensor,
                            margin: float = 0.0, min_gap: float = 0.0) -> torch.Tensor:
    """Margin ranking loss over same-passage pairs, every dimension separately.

    For a pair ``(i, j)`` and dimension ``d`` let ``s = sign(y_id - y_jd)``; the entry is

    ``max(0, -s * (p_id - p_jd) + margin)``

    (``torch.nn.functional.margin_ranking_loss``). Entries with equal labels (``s = 0``) or a
    label gap ``|y_id - y_jd| < min_gap`` are skipped; the loss is the mean over the remaining
    entries, and a zero that keeps the graph (``pred.sum() * 0``) when none remains.
    ``pairs`` is a ``(P, 2)`` integer tensor of row indices into the batch.
    """
    _check_pair(pred, target)
    _check_pairs(pairs, pred.shape[0])
    _check_finite_number(margin, "margin", low=0.0)
    _check_finite_number(min_gap, "min_gap", low=0.0)
    i, j = pairs[:, 0], pairs[:, 1]
    diff = target[i] - target[j]                          # (P, D)
    valid = (diff != 0) & (diff.abs() >= min_gap)
    if not valid.any():
        return pred.sum() * 0.0
    return F.margin_ranking_loss(pred[i][valid], pred[j][valid], torch.sign(diff[valid]),
                                 margin=float(margin), reduction="mean")


def tier_ranking(score: torch.Tensor, tiers: torch.Tensor, pairs: torch.Tensor,
                 margin: float = 1.0) -> torch.Tensor:
    """Margin ranking loss for degradation-tier pairs: the less degraded item scores higher.

    ``score`` (B,) is a scalar quality score, ``tiers`` (B,) the integer degradation tier
    (0 clean .. 3 severe). For a pair with ``tier_a < tier_b`` the entry is

    ``max(0, margin - (s_a - s_b))``

    (the pair is swapped when ``tier_a > tier_b``); pairs of equal tier are skipped. The loss
    is the mean over the remaining pairs, ``score.sum() * 0`` when none remains.
    """
    _check_tensor(score, "score", ndim=1, floating=True)
    _check_tensor(tiers, "tiers", ndim=1, floating=False)
    if tiers.shape != score.shape:
        raise ValueError(f"score has shape {tuple(score.shape)} but tiers has shape {tuple(tiers.shape)}")
    _check_pairs(pairs, score.shape[0])
    _check_finite_number(margin, "margin", low=0.0)
    a, b = pairs[:, 0], pairs[:, 1]
    # +1 when a is the cleaner item (lower tier), so margin_ranking_loss wants s_a > s_b.
    sign = torch.sign(tiers[b] - tiers[a]).to(score.dtype)
    valid = sign != 0
    if not valid.any():
        return score.sum() * 0.0
    return F.margin_ranking_loss(score[a][valid], score[b][valid], sign[valid],
                                 margin=float(margin), reduction="mean")


# --------------------------------------------------------------------------- ordinal heads
#
# CORAL and CORN are implemented here rather than taken from ``coral-pytorch``: that package
# handles one ordinal target per layer and loss call, whereas here the 19 dimensions share one
# head with a per-dimension bias vector, and the 19 losses are computed batched over a
# (B, D, K-1) logit tensor in one call.


def ordinal_levels(target: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Discretise [0, 1] labels into ``n_levels`` equal-width bins: ``min(floor(clip(y, 0, 1) * K), K - 1)``.

    Returns a long tensor of the same shape with values ``0 .. K-1``; ``y = 1`` falls in the top bin.
    """
    _check_tensor(target, "target", floating=True)
    _check_n_levels(n_levels)
    if not torch.isfinite(target).all():
        raise ValueError("target contains NaN or infinite values")
    return torch.floor(target.clamp(0.0, 1.0) * n_levels).long().clamp(max=n_levels - 1)


def level_values(n_levels: int) -> torch.Tensor:
    """Bin centres on the label scale: ``(k + 0.5) / K`` for ``k = 0 .. K-1``."""
    _check_n_levels(n_levels)
    return (torch.arange(n_levels, dtype=torch.float32) + 0.5) / n_levels


def ordinal_to_value(expected_level, n_levels: int):
    """Map a (possibly fractional) level index to the label scale: ``(level + 0.5) / K``.

    Linear in the level, so integer levels land on :func:`level_values` and an expected level
    lands between the bin centres it averages.
    """
    _check_n_levels(n_levels)
    return (expected_level + 0.5) / n_levels


def _check_ordinal(logits, levels, name: str = "logits") -> int:
    """Validate (B, D, K-1) logits against (B, D) levels; return K."""
    _check_tensor(logits, name, ndim=3, floating=True)
    _check_tensor(levels, "levels", ndim=2, floating=False)
    if logits.shape[:2] != levels.shape:
        raise ValueError(f"{name} has shape {tuple(logits.shape)} but levels has shape "
                         f"{tuple(levels.shape)}; expected (B, D, K-1) and (B, D)")
    n_levels = logits.shape[2] + 1
    if n_levels < 2:
        raise ValueError(f"{name} needs at least one threshold (last axis K-1 >= 1)")
    if levels.numel() and (levels.min() < 0 or levels.max() >= n_levels):
        raise ValueError(f"levels must lie in 0..{n_levels - 1} for {n_levels - 1} thresholds")
    return n_levels


def coral_loss(logits: torch.Tensor, levels: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """CORAL loss (Cao, Mirjalili & Raschka 2020) for ``D`` ordinal targets at once.

    ``logits`` (B, D, K-1): ``l_k`` scores ``P(y > k)``; ``levels`` (B, D) in ``0 .. K-1``. Per
    element,

    ``L_bd = -(1 / (K-1)) sum_k [1(y > k) log sigma(l_k) + 1(y <= k) log(1 - sigma(l_k))]``

    and the loss is the (weighted) mean of ``L_bd`` over ``B`` and ``D``. Normalisation: the
    threshold sum is divided by ``K - 1`` (``coral-pytorch`` sums over thresholds), so the
    loss scale does not grow with the number of levels. ``log(1 - sigma(l)) = logsigmoid(-l)``
    keeps large logits finite.
    """
    n_levels = _check_ordinal(logits, levels)
    k = torch.arange(n_levels - 1, device=logits.device)
    above = (levels.unsqueeze(-1) > k).to(logits.dtype)                  # (B, D, K-1)
    nll = -(above * F.logsigmoid(logits) + (1.0 - above) * F.logsigmoid(-logits))
    return _weighted_mean(nll.mean(dim=-1), weight)


def corn_loss(logits: torch.Tensor, levels: torch.Tensor,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """CORN loss (Shi, Cao & Raschka 2021) for ``D`` ordinal targets at once.

    ``logits`` (B, D, K-1): ``l_k`` scores the conditional ``P(y > k | y >= k)``. Task ``k`` is
    trained only on the elements with ``y >= k`` (task 0 on all), with binary label ``1(y > k)``:

    ``L = sum_{b,d,k: y_bd >= k} w_bd * bce(l_bdk, 1(y_bd > k)) / sum_{b,d,k: y_bd >= k} w_bd``

    i.e. the mean over all used (element, dimension, task) entries (as ``coral-pytorch``'s
    ``corn_loss``, which divides by the total size of the conditional subsets); ``w = 1``
    without weights. A (B, 1) or (B, D) ``weight`` weights every task entry of its element.
    """
    n_levels = _check_ordinal(logits, levels)
    k = torch.arange(n_levels - 1, device=logits.device)
    y = levels.unsqueeze(-1)
    used = (y >= k).to(logits.dtype)                                     # (B, D, K-1)
    above = (y > k).to(logits.dtype)
    nll = -(above * F.logsigmoid(logits) + (1.0 - above) * F.logsigmoid(-logits))
    if weight is None:
        return (nll * used).sum() / used.sum()  # task 0 uses every element: never 0 / 0
    B, D = levels.shape
    _check_tensor(weight, "weight", ndim=2, floating=True)
    if weight.shape not in ((B, D), (B, 1)):
        raise ValueError(f"weight must have shape ({B}, {D}) or ({B}, 1), got {tuple(weight.shape)}")
    w = weight.to(dtype=logits.dtype, device=logits.device).expand(B, D)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("weight must be finite and non-negative")
    wu = w.unsqueeze(-1) * used
    total = wu.sum()
    if total <= 0:
        raise ValueError("weight sums to 0: no element would count")
    return (nll * wu).sum() / total


def coral_expected_level(logits: torch.Tensor) -> torch.Tensor:
    """Expected level of a CORAL head: ``E[y] = sum_k P(y > k) = sum_k sigma(l_k)``; (B, D) float."""
    _check_tensor(logits, "logits", ndim=3, floating=True)
    return torch.sigmoid(logits).sum(dim=-1)


def corn_expected_level(logits: torch.Tensor) -> torch.Tensor:
    """Expected level of a CORN head: ``E[y] = sum_k P(y > k) = sum_k prod_{j<=k} sigma(l_j)``.

    The chain rule turns the conditional probabilities into marginal ones; (B, D) float.
    """
    _check_tensor(logits, "logits", ndim=3, floating=True)
    return torch.cumprod(torch.sigmoid(logits), dim=-1).sum(dim=-1)


# --------------------------------------------------------------------------- LDS weights


def lds_weights(target: np.ndarray, n_bins: int = 20, sigma: float = 2.0,
                power: float = 0.5) -> np.ndarray:
    """Per-sample weights by label distribution smoothing (Yang et al. 2021, "Delving into Deep
    Imbalanced Regression").

    For every dimension ``d`` separately: the labels (clipped to [0, 1]) are binned into
    ``n_bins`` equal-width bins, the bin counts ``c`` are smoothed with a Gaussian kernel of
    standard deviation ``sigma`` bins (``scipy.ndimage.gaussian_filter1d``, ``mode='constant'``,
    so mass near 0 and 1 is not reflected back), and a sample in bin ``b`` gets

    ``w_id = c~_b ** (-power) / mean_i(c~_{b(i)} ** (-power))``

    so each dimension's weights have mean 1. ``power = 0.5`` is inverse square root, 1 inverse,
    0 no reweighting. ``sigma = 0`` skips the smoothing. (The reference code takes the square
    root of the counts before smoothing for its ``sqrt_inv`` option; here the power is applied
    after, which is identical for ``power = 1``. Its kernel is scaled to peak 1 instead of sum 1:
    a constant factor that the mean-1 normalisation removes.)

    ``target`` (N, D) or (N,) NumPy labels; returns float (N, D) (or (N,)) weights.
    """
    y = np.asarray(target, dtype=float)
    one_d = y.ndim == 1
    if one_d:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] < 1:
        raise ValueError(f"target must be a non-empty (N, D) or (N,) array, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("target contains NaN or infinite values")
    if not isinstance(n_bins, numbers.Integral) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    _check_finite_number(sigma, "sigma", low=0.0)
    _check_finite_number(power, "power", low=0.0)

    bins = np.minimum((np.clip(y, 0.0, 1.0) * n_bins).astype(int), n_bins - 1)
    weights = np.empty_like(y)
    for d in range(y.shape[1]):
        counts = np.bincount(bins[:, d], minlength=n_bins).astype(float)
        # gaussian_filter1d divides by sigma^2, so sigma = 0 must bypass it.
        smoothed = gaussian_filter1d(counts, sigma, mode="constant") if sigma > 0 else counts
        # An occupied bin keeps its own count times the kernel centre (> 0), so density > 0.
        w = smoothed[bins[:, d]] ** (-float(power))
        weights[:, d] = w / w.mean()
    return weights[:, 0] if one_d else weights


# --------------------------------------------------------------------------- weak labels


def weak_label_loss(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a tier head against probabilistic (soft) labels, e.g. Snorkel's.

    ``logits`` (B, C) (C = 4 tiers here), ``probs`` (B, C) label distributions:

    ``L = -(1 / |V|) sum_{b in V} sum_c p_bc log softmax(l_b)_c``

    over the valid rows ``V``. Rows containing NaN or summing to 0 carry no label (all labelling
    functions abstained) and are skipped; any other row must be a distribution (entries >= 0,
    sum within 1e-3 of 1). Returns ``logits.sum() * 0`` when no row is valid.
    """
    _check_tensor(logits, "logits", ndim=2, floating=True)
    _check_tensor(probs, "probs", ndim=2, floating=True)
    if logits.shape != probs.shape:
        raise ValueError(f"logits has shape {tuple(logits.shape)} but probs has shape {tuple(probs.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"need at least 2 classes, got {logits.shape[1]}")
    probs = probs.to(dtype=logits.dtype, device=logits.device)
    row_sum = probs.sum(dim=1)
    valid = ~torch.isnan(probs).any(dim=1) & (row_sum != 0)
    p = probs[valid]
    if not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs rows must be non-negative and finite (NaN rows are skipped)")
    bad = (row_sum[valid] - 1.0).abs() > _PROB_SUM_ATOL
    if bad.any():
        raise ValueError(f"{int(bad.sum())} probs row(s) do not sum to 1 (nor to 0)")
    if p.shape[0] == 0:
        return logits.sum() * 0.0
    return -(p * F.log_softmax(logits[valid], dim=1)).sum(dim=1).mean()
