"""Paired model comparisons (``metrics/comparisons.json``): is A better than B on a protocol?

Per pair and protocol: the R^2 difference with a bias-corrected percentile interval from a
paired passage-group bootstrap (``metrics.paired_r2_difference``: both models on the same resamples of the same
rows; over repeated piece splits, the mean over the seeds both were scored on), and Williams'
test per dimension with a Holm correction over the dimensions. "Better" means the interval
excludes 0; a difference inside it is reported as inside the noise.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.ablation import best_by_validation
from pianoeval.evaluate.metrics import jsonable, paired_r2_difference, r2
from pianoeval.evaluate.report import SEEDED, Stacked, stack_predictions, williams_vs_reference


def comparison_pairs(eval_dict: dict, default: str, single_modality: Sequence[str],
                     baseline: str, ablations: Sequence[str],
                     pairs: Sequence[Sequence[str]]) -> list[tuple[str, str, str]]:
    """(A, B, role) to compare: the default against the best single-modality model (chosen by
    validation R^2, never a test set), the baseline and each ablation; then the extra pairs.
    Models missing from ``eval_dict`` are left out."""
    out = []
    best_single = best_by_validation(eval_dict, [m for m in single_modality if m != default])
    if default in eval_dict:
        if best_single:
            out.append((default, best_single, "best_single_modality"))
        if baseline in eval_dict:
            out.append((default, baseline, "baseline"))
        out += [(default, m, "ablation") for m in ablations if m in eval_dict and m != default]
    out += [(a, b, "pair") for a, b in pairs if a in eval_dict and b in eval_dict]
    return out


def _files_by_protocol(protocols: Sequence[str], available: Sequence[str]) -> dict[str, dict]:
    """protocol -> {seed or None: file protocol}: ``piece_cv`` gathers ``piece_s<seed>_cv``."""
    out: dict[str, dict] = {}
    for name in available:
        m = SEEDED.match(name)
        key = f"{m['split']}_{m['kind']}" if m else name
        if key in protocols:
            out.setdefault(key, {})[int(m["seed"]) if m else None] = name
    return out


def _on_common_rows(a: Stacked, b: Stacked) -> tuple[Stacked, Stacked]:
    common, i, j = np.intersect1d(a.segments, b.segments, return_indices=True)
    return (Stacked(common, a.y_true[i], a.y_pred[:, i]), Stacked(common, b.y_true[j], b.y_pred[:, j]))


def compare_models(labels: pd.DataFrame, predictions: Mapping[str, Mapping[str, pd.DataFrame]],
                   pairs: Sequence[tuple[str, str, str]], protocols: Sequence[str],
                   groups: Mapping[str, str], n_resamples: int = 1000, seed: int = 0,
                   confidence: float = 0.95, dims: Sequence[str] = DIMENSIONS) -> dict:
    """``{protocol: [comparison, ...]}`` for every pair scored on the protocol (on the seeds
    and rows both models have)."""
    out: dict[str, list] = {}
    for a, b, role in pairs:
        files_a = _files_by_protocol(protocols, list(predictions.get(a, {})))
        files_b = _files_by_protocol(protocols, list(predictions.get(b, {})))
        for protocol in protocols:
            seeds = sorted(set(files_a.get(protocol, {})) & set(files_b.get(protocol, {})),
                           key=lambda s: -1 if s is None else s)
            if not seeds:
                continue
            sets_a, sets_b, clusters, williams = [], [], [], []
            for sd in seeds:
                sa, sb = _on_common_rows(
                    stack_predictions(predictions[a][files_a[protocol][sd]], labels, dims),
                    stack_predictions(predictions[b][files_b[protocol][sd]], labels, dims))
                sets_a.append((sa.y_true, sa.y_pred))
                sets_b.append((sb.y_true, sb.y_pred))
                clusters.append([groups[s] for s in sa.segments])
                w = williams_vs_reference({a: sa, b: sb}, {a: {"r2": 0.0}, b: {"r2": 0.0}}, [b],
                                          dims, key="reference")[a]
                williams.append({k: w[k] for k in ("n_better_p05", "n_worse_p05",
                                                    "n_better_holm", "n_worse_holm")} if w else None)
            diff = paired_r2_difference(sets_a, sets_b, clusters, n_resamples=n_resamples,
                                        seed=seed, confidence=confidence)
            mean_r2 = lambda sets: float(np.mean([np.mean([r2(y, p) for p in preds])  # noqa: E731
                                                  for y, preds in sets]))
            out.setdefault(protocol, []).append(jsonable({
                "a": a, "b": b, "role": role, "r2_a": mean_r2(sets_a), "r2_b": mean_r2(sets_b),
                "difference": diff["difference"], "ci": list(diff["ci"]),
                "significant": diff["significant"],
                "verdict": (f"{a} better" if diff["ci"][0] > 0 else f"{b} better"
                            if diff["ci"][1] < 0 else "inside the noise"),
                "seeds": [s for s in seeds if s is not None], "n": len(sets_a[0][0]),
                "williams": williams if seeds != [None] else williams[0],
            }))
    return out
