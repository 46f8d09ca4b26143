"""Labelling functions (LFs) that guess a sample's quality tier, and their Snorkel aggregation.

Each LF reads one feature of the performance or of its score alignment and votes a tier when
the value lies beyond what real performances show, else abstains. "Beyond" is measured against
a *reference* distribution of real (undegraded) performances: with the reference's quantiles
``Q(q_1) < Q(q_2) < Q(q_3)`` taken on the feature's bad side (``q`` for "higher is worse",
``1 - q`` for "lower is worse", both for a two-sided LF), the LF votes tier k = the number of them the value passes
(1..3), and abstains when it passes none or the value is missing. One more LF, ``typical``,
votes tier 0 when every readable LF feature sits inside the reference's central band
``[Q(1 - q_t), Q(q_t)]``. The quantile levels are params set once, never tuned on the tiers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ABSTAIN = -1

# name -> (feature, direction: +1 higher is worse, -1 lower is worse, 0 both sides); what each
# one detects. Kept apart from each other on purpose: the label model assumes LFs err
# independently given the tier, so two LFs reading one symptom (onset-deviation spread next to
# chord spread, short and long articulation as two LFs) made it worse than a majority vote on
# the development works (see the closing note of issue 5).
LF_SPECS = {
    "chord_spread": ("align_chord_spread_ms_mean", +1),        # timing jitter splits chords
    "tempo_instability": ("align_log_tempo_std", +1),          # tempo drift
    "unmatched_notes": ("align_insertion_rate", +1),           # wrong notes
    "missing_notes": ("align_deletion_rate", +1),              # dropped notes
    "velocity_jumps": ("align_velocity_rel_local_std", +1),    # uncontrolled dynamics
    "velocity_entropy_low": ("velocity_entropy_bits", -1),     # flattened dynamics
    "pedal_saturation": ("sustain_down_ratio", +1),            # over-pedalling
    "articulation_extreme": ("align_articulation_ratio_median", 0),  # clipped or smeared notes
    "articulation_spread": ("align_articulation_ratio_iqr", +1),     # uneven articulation
    "key_overlap": ("same_key_overlap_rate", +1),  # a key struck again before it was released
}


def _features() -> list[str]:
    return sorted({f for f, _ in LF_SPECS.values()})


@dataclass(frozen=True)
class Reference:
    """Quantiles of each LF feature over real performances (``levels`` -> value)."""

    quantiles: pd.DataFrame  # index: quantile level, columns: features

    @classmethod
    def fit(cls, frame: pd.DataFrame, levels) -> "Reference":
        missing = [f for f in _features() if f not in frame.columns]
        if missing:
            raise ValueError(f"reference frame lacks LF features {missing}")
        levels = sorted({float(q) for q in levels} | {1.0 - float(q) for q in levels})
        return cls(frame[_features()].quantile(levels))

    def cut(self, feature: str, level: float) -> float:
        return float(self.quantiles.loc[min(self.quantiles.index, key=lambda q: abs(q - level)),
                                        feature])


def graded_vote(values: np.ndarray, cuts, direction: int) -> np.ndarray:
    """Tier = how many of the increasing ``cuts`` (3 values, on the bad side) the value passes
    strictly in ``direction``; ABSTAIN when none or NaN."""
    cuts = np.asarray(cuts, float)
    if cuts.shape != (3,):
        raise ValueError(f"need 3 cuts, got {cuts.tolist()}")
    v = direction * np.asarray(values, float)
    c = direction * cuts
    if np.any(np.diff(c) < 0):
        raise ValueError(f"cuts must grow towards the bad side, got {cuts.tolist()}")
    votes = (v[:, None] > c[None, :]).sum(axis=1)
    return np.where(np.isfinite(v) & (votes > 0), votes, ABSTAIN).astype(np.int64)


def typical_vote(frame: pd.DataFrame, reference: Reference, level: float,
                 min_readable: int = 4) -> np.ndarray:
    """Tier 0 when every readable LF feature is inside the reference's central band
    ``[Q(1 - level), Q(level)]`` and at least ``min_readable`` are readable."""
    inside, readable = [], []
    for f in _features():
        v = frame[f].to_numpy(float)
        lo, hi = reference.cut(f, 1.0 - level), reference.cut(f, level)
        readable.append(np.isfinite(v))
        inside.append(~np.isfinite(v) | ((v >= lo) & (v <= hi)))
    calm = np.all(inside, axis=0) & (np.sum(readable, axis=0) >= min_readable)
    return np.where(calm, 0, ABSTAIN).astype(np.int64)


def apply_lfs(frame: pd.DataFrame, reference: Reference, levels, typical_level: float
              ) -> tuple[np.ndarray, list[str]]:
    """The label matrix L (samples x LFs; tiers 0..3 or ABSTAIN) and the LF names. ``levels``:
    the three quantile levels of the tier cuts (e.g. 0.9, 0.97, 0.995)."""
    names, columns = [], []
    for name, (feature, direction) in LF_SPECS.items():
        values = frame[feature].to_numpy(float)
        votes = [graded_vote(values, [reference.cut(feature, q if side > 0 else 1.0 - q)
                                      for q in levels], side)
                 for side in ((+1, -1) if direction == 0 else (direction,))]
        names.append(name)
        columns.append(np.max(votes, axis=0))  # ABSTAIN (-1) loses to any vote
    names.append("typical")
    columns.append(typical_vote(frame, reference, typical_level))
    return np.column_stack(columns), names


def lf_analysis(L: np.ndarray, names: list[str], truth: np.ndarray) -> pd.DataFrame:
    """Snorkel's LFAnalysis: polarity, coverage, overlaps, conflicts, and the empirical accuracy
    against the known tiers."""
    from snorkel.labeling import LFAnalysis

    summary = LFAnalysis(L).lf_summary(Y=np.asarray(truth))
    summary.index = names
    return summary


@dataclass(frozen=True)
class Aggregated:
    probs: np.ndarray  # label model P(tier) per sample (samples x 4)
    label_model: np.ndarray  # its argmax (ABSTAIN where every LF abstained)
    majority: np.ndarray  # majority vote (ties broken at random, seeded; ABSTAIN if none voted)


def aggregate(L: np.ndarray, cardinality: int = 4, epochs: int = 500, lr: float = 0.01,
              l2: float = 0.0, seed: int = 0, class_balance=None) -> Aggregated:
    """Fit Snorkel's LabelModel on L (no true labels; ``class_balance`` = the prior share of
    each tier, None = learned/uniform) and take a majority vote for comparison."""
    from snorkel.labeling.model import LabelModel, MajorityLabelVoter

    model = LabelModel(cardinality=cardinality, verbose=False)
    model.fit(L, n_epochs=epochs, lr=lr, l2=l2, seed=seed, progress_bar=False,
              class_balance=None if class_balance is None else np.asarray(class_balance, float))
    probs = model.predict_proba(L)
    covered = (L != ABSTAIN).any(axis=1)
    lm = np.where(covered, probs.argmax(axis=1), ABSTAIN)
    np.random.seed(seed)  # MajorityLabelVoter breaks ties with NumPy's global generator
    mv = MajorityLabelVoter(cardinality=cardinality).predict(L, tie_break_policy="random")
    return Aggregated(probs, lm, np.where(covered, mv, ABSTAIN))


def accuracy_report(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy over all samples (an abstention counts as wrong) and over the covered ones."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    covered = pred != ABSTAIN
    return {"accuracy": float((pred == truth).mean()),
            "accuracy_covered": float((pred[covered] == truth[covered]).mean()) if covered.any()
            else float("nan"),
            "coverage": float(covered.mean())}
