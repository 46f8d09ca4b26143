"""Assemble scores of every model on every protocol: eval dict, plot tables, markdown table.

Inputs are in-memory DataFrames (the stage script does the file I/O):

* labels: ``segment`` plus one column per dimension (extra columns are ignored);
* predictions: ``{model: {protocol: DataFrame}}`` with ``segment``, ``fold`` and the dimension
  columns. A file with one row per segment holds pooled out-of-fold predictions (k = 1); one
  with every segment once per fold model holds k test-set predictions (k = number of folds).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.segments import parse_segment
from pianoeval.evaluate.metrics import (cohens_q, holm, jsonable, pearson_per_dim, score_protocol,
                                        seed_mean_ci, williams_test)


@dataclass(frozen=True)
class Stacked:
    """Predictions of one model on one protocol, aligned with the labels by segment."""

    segments: np.ndarray  # (n,) segment names, sorted
    y_true: np.ndarray  # (n, d)
    y_pred: np.ndarray  # (k, n, d): one slice per fold model (k = 1 when pooled)

    @property
    def pooled(self) -> bool:
        return self.y_pred.shape[0] == 1

    @property
    def ensemble(self) -> np.ndarray:
        """Mean of the k predictions, (n, d): what Williams' test compares."""
        return self.y_pred.mean(axis=0)

    @property
    def passages(self) -> list[str]:
        return [parse_segment(s).passage for s in self.segments]


def stack_predictions(pred: pd.DataFrame, labels: pd.DataFrame,
                      dims: Sequence[str] = DIMENSIONS) -> Stacked:
    """Align a prediction table with the labels; ValueError on missing columns or segments."""
    dims = list(dims)
    for name, df, cols in (("predictions", pred, ["segment", "fold", *dims]),
                           ("labels", labels, ["segment", *dims])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name} lack columns {missing[:5]}")
    if labels["segment"].duplicated().any():
        raise ValueError("labels list a segment more than once")
    truth = labels.set_index("segment")[dims]
    unknown = sorted(set(pred["segment"]) - set(truth.index))
    if unknown:
        raise ValueError(f"{len(unknown)} predicted segments have no label, e.g. {unknown[:3]}")

    if not pred["segment"].duplicated().any():
        frames = [pred]
    else:  # one test-set prediction per fold model
        frames = [g for _, g in pred.groupby("fold", sort=True)]
        for f in frames:
            if f["segment"].duplicated().any():
                raise ValueError(f"fold {f['fold'].iloc[0]} predicts a segment more than once")
        if any(set(f["segment"]) != set(frames[0]["segment"]) for f in frames):
            raise ValueError("fold models predict different segment sets; cannot average them")
    segments = np.array(sorted(frames[0]["segment"]))
    y_pred = np.stack([f.set_index("segment").loc[segments, dims].to_numpy(float) for f in frames])
    return Stacked(segments, truth.loc[segments].to_numpy(float), y_pred)


SEEDED = re.compile(r"^(?P<split>piece)_s(?P<seed>\d+)_(?P<kind>cv|test)$")


def evaluate(labels: pd.DataFrame, predictions: dict[str, dict[str, pd.DataFrame]],
             baselines: Sequence[str], n_resamples: int = 1000, seed: int = 0,
             confidence: float = 0.95, dims: Sequence[str] = DIMENSIONS,
             progress: Callable[[Iterable], Iterable] = iter,
             single_modality: Sequence[str] = (),
             groups: Mapping[str, str] | None = None) -> dict:
    """``{model: {protocol: score_protocol(...) + {"williams": ...}}}``.

    ``williams`` compares each model with the best (highest R^2) of ``baselines`` on that
    protocol. Where any model of ``single_modality`` (e.g. the score-only and the audio-only
    models) was scored on a protocol, every model there also gets ``williams_single``: the same
    comparison against the best of the ``single_modality`` models (None for that model itself).

    ``groups`` maps each segment to its passage group: the CIs then resample whole groups
    (``ci_unit`` "passage"). Protocols of repeated piece splits (``piece_s<seed>_cv``,
    ``piece_s<seed>_test``) are combined into ``piece_cv`` / ``piece_test`` over their seeds
    (:func:`combine_seeds`).

    Every (model, protocol) pair uses the same bootstrap seed, so models on one protocol are
    scored on the same resamples. ``progress`` wraps the iterable of (model, protocol) pairs
    (e.g. ``tqdm``).
    """
    pairs = [(m, p) for m, by_protocol in predictions.items() for p in by_protocol]
    stacked: dict[str, dict[str, Stacked]] = {}
    out: dict[str, dict[str, dict]] = {}
    for model, protocol in progress(pairs):
        s = stack_predictions(predictions[model][protocol], labels, dims)
        stacked.setdefault(protocol, {})[model] = s
        out.setdefault(model, {})[protocol] = score_protocol(
            s.y_true, s.y_pred, s.passages, n_resamples=n_resamples, seed=seed,
            confidence=confidence, dims=dims, clusters=_clusters(s, groups))
    for protocol, by_model in stacked.items():
        scores = {m: out[m][protocol] for m in by_model}
        for model, result in williams_vs_best_baseline(by_model, scores, baselines, dims).items():
            out[model][protocol]["williams"] = result
        if not set(single_modality) & set(by_model):
            continue  # no single-modality model on this protocol: no key, output as before
        for model, result in williams_vs_reference(by_model, scores, single_modality, dims,
                                                   key="reference").items():
            out[model][protocol]["williams_single"] = result
    return combine_seeds(out, stacked, groups, n_resamples=n_resamples, seed=seed,
                         confidence=confidence, dims=dims)


def _clusters(s: Stacked, groups: Mapping[str, str] | None) -> list[str] | None:
    if groups is None:
        return None
    missing = [seg for seg in s.segments if seg not in groups]
    if missing:
        raise ValueError(f"{len(missing)} segments have no passage group, e.g. {missing[:3]}")
    return [groups[seg] for seg in s.segments]


def combine_seeds(out: dict, stacked: dict[str, dict[str, Stacked]],
                  groups: Mapping[str, str] | None, n_resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95, dims: Sequence[str] = DIMENSIONS) -> dict:
    """Replace each model's ``piece_s<seed>_<kind>`` entries by one ``piece_<kind>`` entry.

    Its measures are the means over the seeds the model was scored on; ``r2_by_seed``,
    ``r2_seed_mean`` and ``r2_seed_sd`` (sample sd, ddof 1; None for one seed) give the spread
    of the split draw; the CIs (``seed_mean_ci``) resample passage groups once for all draws.
    ``by_seed`` keeps each draw's R^2 with its CI, n and Williams counts (p < .05 and after a
    Holm correction over the dimensions).
    """
    combined = {}
    for model, by_protocol in out.items():
        seeded: dict[str, dict[int, str]] = {}
        for protocol in by_protocol:
            m = SEEDED.match(protocol)
            if m:
                seeded.setdefault(f"{m['split']}_{m['kind']}", {})[int(m["seed"])] = protocol
        result = {p: r for p, r in by_protocol.items() if not SEEDED.match(p)}
        for name, by_seed in seeded.items():
            seeds = sorted(by_seed)
            runs = [by_protocol[by_seed[sd]] for sd in seeds]
            sets = [stacked[by_seed[sd]][model] for sd in seeds]
            clusters = [_clusters(st, groups) or list(st.segments) for st in sets]
            ci = seed_mean_ci([(st.y_true, st.y_pred) for st in sets], clusters,
                              n_resamples=n_resamples, seed=seed, confidence=confidence)
            r2s = [r["r2"] for r in runs]
            mean = lambda key: _mean([r[key] for r in runs])  # noqa: E731
            result[name] = jsonable({
                "r2": mean("r2"), "r2_ci": list(ci["r2"]),
                "pearson_r": mean("pearson_r"), "pearson_r_ci": list(ci["pearson_r"]),
                "spearman": mean("spearman"), "mse": mean("mse"),
                "within_passage_r": mean("within_passage_r"),
                "per_dim": {dim: {"r": _mean([r["per_dim"][dim]["r"] for r in runs]),
                                  "r_ci": [ci["per_dim_r"][0][j], ci["per_dim_r"][1][j]],
                                  "r2": _mean([r["per_dim"][dim]["r2"] for r in runs]),
                                  "within_passage_r": _mean([r["per_dim"][dim]["within_passage_r"]
                                                             for r in runs])}
                            for j, dim in enumerate(dims)},
                "r2_by_seed": dict(zip(map(str, seeds), r2s)),
                "r2_seed_mean": mean("r2"),
                "r2_seed_sd": float(np.std(r2s, ddof=1)) if len(seeds) > 1 and None not in r2s else None,
                "n_seeds": len(seeds), "n": runs[0]["n"], "k": runs[0]["k"],
                "ci_unit": runs[0]["ci_unit"],
                "by_seed": {str(sd): {"r2": r["r2"], "r2_ci": r["r2_ci"], "n": r["n"],
                                      **{key: _williams_counts(r.get(key))
                                         for key in ("williams", "williams_single") if key in r}}
                            for sd, r in zip(seeds, runs)},
            })
        combined[model] = result
    return combined


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _williams_counts(w: dict | None) -> dict | None:
    """The reference and the better / worse counts of a Williams result, without per_dim."""
    if w is None:
        return None
    return {k: v for k, v in w.items() if k != "per_dim"}


def best_baseline(scores: dict[str, dict], baselines: Sequence[str]) -> str | None:
    """The baseline with the highest R^2 among those scored (None if none was)."""
    scored = [b for b in baselines if b in scores and scores[b]["r2"] is not None]
    return max(scored, key=lambda b: scores[b]["r2"]) if scored else None


def williams_vs_best_baseline(stacked: dict[str, Stacked], scores: dict[str, dict],
                              baselines: Sequence[str], dims: Sequence[str] = DIMENSIONS) -> dict:
    """``williams_vs_reference`` against the best of ``baselines``, named under ``"baseline"``."""
    return williams_vs_reference(stacked, scores, baselines, dims, key="baseline")


def williams_vs_reference(stacked: dict[str, Stacked], scores: dict[str, dict],
                          references: Sequence[str], dims: Sequence[str] = DIMENSIONS,
                          key: str = "reference") -> dict:
    """Williams' test and Cohen's q per dimension of each model's r against the r of the best
    (highest R^2, ``best_baseline``) of ``references``.

    For one protocol: ``stacked`` and ``scores`` map model -> its predictions / score dict.
    Variable 1 is the labels, 2 the model, 3 the reference, each the ensemble (mean over fold
    models) on test protocols; ``n`` is the rows both predicted. Per dimension: Williams' ``t``
    and ``p`` and ``cohens_q`` = atanh(r12) - atanh(r13) (positive: the model correlates better);
    ``mean_q`` is the mean of q over dimensions; ``n_better_holm`` / ``n_worse_holm`` count the
    dimensions still significant at .05 after a Holm correction over the dimensions. The reference's name is stored under ``key``.
    The reference itself gets None, every model gets None when no reference was scored. An
    undefined r (constant predictions) gives t = p = q = None (and mean_q = None).
    """
    ref = best_baseline(scores, references)
    out: dict[str, dict | None] = {}
    for model, s in stacked.items():
        if ref is None or model == ref:
            out[model] = None
            continue
        b = stacked[ref]
        common, i, j = np.intersect1d(s.segments, b.segments, return_indices=True)
        if len(common) <= 3:
            out[model] = None
            continue
        y, p_model, p_ref = s.y_true[i], s.ensemble[i], b.ensemble[j]
        r_model, r_ref = pearson_per_dim(y, p_model), pearson_per_dim(y, p_ref)
        t, p = williams_test(r_model, r_ref, pearson_per_dim(p_model, p_ref), len(common))
        q = cohens_q(r_model, r_ref)
        p_holm = holm(p)
        out[model] = jsonable({
            key: ref, "n": len(common),
            "n_better_p05": int(np.sum((t > 0) & (p < 0.05))),
            "n_worse_p05": int(np.sum((t < 0) & (p < 0.05))),
            "n_better_holm": int(np.sum((t > 0) & (p_holm < 0.05))),
            "n_worse_holm": int(np.sum((t < 0) & (p_holm < 0.05))),
            "mean_q": np.mean(q),  # NaN (-> None) when any dimension's r is undefined
            "per_dim": {dim: {"t": t[k], "p": p[k], "cohens_q": q[k]}
                        for k, dim in enumerate(dims)},
        })
    return out


# --------------------------------------------------------------------------- tables


def results_markdown(eval_dict: dict, confidence: float = 0.95, decimals: int = 3) -> str:
    """Markdown table, one row per model x protocol: R^2 [CI], mean r [CI], Spearman, within-passage r, n."""
    def num(x):
        return "–" if x is None else f"{x:.{decimals}f}"

    def with_ci(x, ci):
        return f"{num(x)} [{num(ci[0])}, {num(ci[1])}]" if x is not None else "–"

    level = f"{confidence:.0%} CI"
    lines = [f"| model | protocol | R² [{level}] | mean r [{level}] | Spearman ρ | within-passage r | n |",
             "|---|---|---|---|---|---|---|"]
    for model, by_protocol in eval_dict.items():
        for protocol, res in by_protocol.items():
            lines.append(f"| {model} | {protocol} | {with_ci(res['r2'], res['r2_ci'])} | "
                         f"{with_ci(res['pearson_r'], res['pearson_r_ci'])} | {num(res['spearman'])} | "
                         f"{num(res['within_passage_r'])} | {res['n']} |")
    return "\n".join(lines) + "\n"
