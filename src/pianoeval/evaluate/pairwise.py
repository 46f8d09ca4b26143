"""Two models head to head on one protocol: each one's R^2 with its BCa CI (``score_protocol``,
the evaluate stage's scoring, same seed, so the same numbers as ``metrics/eval.json``) and
Williams' test per dimension of model A's r against model B's (``williams_vs_best_baseline``
with B as the only baseline: labels, A and B are the three dependent variables); per protocol,
the seed-averaged predictions and each seed's single models (``compare_protocol``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.metrics import score_protocol
from pianoeval.evaluate.report import stack_predictions, williams_vs_best_baseline


def compare_pair(pred_a: pd.DataFrame, pred_b: pd.DataFrame, labels: pd.DataFrame, a: str, b: str,
                 n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                 dims: Sequence[str] = DIMENSIONS, groups: Mapping[str, str] | None = None) -> dict:
    """``{a: {r2, r2_ci, pearson_r}, b: {...}, r2_difference, williams}`` for one protocol;
    ``groups`` (segment -> passage group) makes the CIs resample passage groups."""
    stacked = {m: stack_predictions(p, labels, dims) for m, p in ((a, pred_a), (b, pred_b))}
    scores = {m: score_protocol(s.y_true, s.y_pred, s.passages, n_resamples=n_resamples,
                                seed=seed, confidence=confidence, dims=dims,
                                clusters=None if groups is None else [groups[x] for x in s.segments])
              for m, s in stacked.items()}
    williams = williams_vs_best_baseline(stacked, scores, [b], dims)[a]
    out = {m: {k: scores[m][k] for k in ("r2", "r2_ci", "pearson_r", "pearson_r_ci")} for m in (a, b)}
    return {**out, "r2_difference": round(scores[a]["r2"] - scores[b]["r2"], 6), "williams": williams}


def summarise_seeds(per_seed: dict[str, dict], a: str, b: str) -> dict:
    """Over ``per_seed`` (seed -> a ``compare_pair`` result): the mean R^2 of A's and of B's
    single models, the mean, min and max of R^2_A - R^2_B, and in how many seeds A is ahead."""
    if not per_seed:
        raise ValueError("no seeds to summarise")
    diff = [v["r2_difference"] for v in per_seed.values()]
    return {a: round(sum(v[a]["r2"] for v in per_seed.values()) / len(diff), 6),
            b: round(sum(v[b]["r2"] for v in per_seed.values()) / len(diff), 6),
            "r2_difference": round(sum(diff) / len(diff), 6),
            "r2_difference_range": [min(diff), max(diff)],
            "seeds_a_better": sum(d > 0 for d in diff), "seeds": len(diff)}


def shared_protocols(folder: Path, a: str, b: str) -> list[str]:
    """The protocols (file stems, sorted) with a prediction CSV under both ``folder/a`` and
    ``folder/b``."""
    stems = sorted(f.stem for f in (folder / a).glob("*.csv"))
    return [p for p in stems if all((folder / m / f"{p}.csv").is_file() for m in (a, b))]


def seed_folders(folder: Path) -> dict[str, str]:
    """``seed<N>`` -> the name of ``folder``'s ``predictions_seed<N>`` entry, in order of N."""
    names = sorted((d.name for d in folder.glob("predictions_seed*")),
                   key=lambda n: int(n.removeprefix("predictions_seed")))
    return {n.removeprefix("predictions_"): n for n in names}


def compare_protocol(pooled: tuple[pd.DataFrame, pd.DataFrame],
                     per_seed: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
                     labels: pd.DataFrame, a: str, b: str, **kw) -> dict:
    """``compare_pair`` of the seed-averaged predictions (``pooled``: A's, B's); when
    ``per_seed`` (seed -> A's and B's single-model predictions) has any, also ``per_seed``
    (per seed: both R^2 entries, ``r2_difference`` and Williams' dims better and worse at
    p<.05) and ``seed_mean`` (``summarise_seeds``). ``kw`` goes to ``compare_pair``."""
    out = compare_pair(*pooled, labels, a, b, **kw)
    single = {seed: compare_pair(*p, labels, a, b, **kw) for seed, p in per_seed.items()}
    if single:
        out["per_seed"] = {
            seed: {a: c[a], b: c[b], "r2_difference": c["r2_difference"],
                   "williams_better_worse": [c["williams"]["n_better_p05"],
                                             c["williams"]["n_worse_p05"]]}
            for seed, c in single.items()}
        out["seed_mean"] = summarise_seeds(single, a, b)
    return out
