"""What DVC's own views show: `dvc metrics show/diff` and `dvc plots show`.

``metrics/eval.json`` holds every measure (per dimension, per seed, with CIs) and is a plain
output; the metric DVC compares across commits and experiments is :func:`summary_metrics`,
the three figures a researcher compares per model and protocol. The plot tables are cut to
what one chart can show: the default model against a baseline on one protocol.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.report import SEEDED, stack_predictions

SUMMARY_MEASURES = {"r2": "r2", "mean_r": "pearson_r", "within_passage_r": "within_passage_r"}


def summary_metrics(eval_dict: dict) -> dict:
    """{model: {protocol: {r2, mean_r, within_passage_r}}} from ``eval.json``'s results.

    ``r2`` is R² over the 19 dimensions, ``mean_r`` the mean per-dimension Pearson r,
    ``within_passage_r`` the mean r within passage groups; on the repeated piece splits each is
    the mean over the split seeds (``r2_seed_sd`` is added there when there are several).
    """
    out = {}
    for model, by_protocol in eval_dict.items():
        out[model] = {}
        for protocol, res in by_protocol.items():
            row = {name: res[key] for name, key in SUMMARY_MEASURES.items()}
            if res.get("r2_seed_sd") is not None:
                row["r2_seed_sd"] = res["r2_seed_sd"]
            out[model][protocol] = row
    return out


def per_dim_r_plot(eval_dict: dict, models: Sequence[str], protocol: str) -> pd.DataFrame:
    """(model, dimension, r, r_low, r_high) of ``models`` on ``protocol``: one bar with its CI
    per model and dimension. KeyError names a model or protocol ``eval_dict`` lacks."""
    rows = []
    for model in models:
        if protocol not in eval_dict.get(model, {}):
            raise KeyError(f"no {model!r} result on {protocol!r} to plot")
        for dim, v in eval_dict[model][protocol]["per_dim"].items():
            rows.append((model, dim, v["r"], *v["r_ci"]))
    return pd.DataFrame(rows, columns=["model", "dimension", "r", "r_low", "r_high"])


def pred_vs_true_plot(labels: pd.DataFrame, predictions: dict[str, dict[str, pd.DataFrame]],
                      model: str, protocol: str, dims: Sequence[str] = DIMENSIONS,
                      decimals: int = 3) -> pd.DataFrame:
    """(segment, dimension, true, pred) of ``model``'s out-of-fold predictions on ``protocol``
    (a cross-validation protocol: one prediction per segment); ``piece_cv`` plots the first
    split seed's."""
    by_protocol = predictions.get(model, {})
    seeded = sorted((int(m["seed"]), name) for name in by_protocol
                    if (m := SEEDED.match(name)) and f"{m['split']}_{m['kind']}" == protocol)
    name = seeded[0][1] if seeded else protocol
    if name not in by_protocol:
        raise KeyError(f"no {model!r} predictions on {protocol!r} to plot")
    stacked = stack_predictions(by_protocol[name], labels, dims)
    if not stacked.pooled:
        raise ValueError(f"{protocol}: a test protocol (several fold models per segment); "
                         "plot a cross-validation protocol")
    n, d = stacked.y_true.shape
    return pd.DataFrame({"segment": np.repeat(stacked.segments, d),
                         "dimension": np.tile(list(dims), n),
                         "true": stacked.y_true.ravel().round(decimals),
                         "pred": stacked.y_pred[0].ravel().round(decimals)})


def write_views(out: Path, eval_dict: dict, labels: pd.DataFrame,
                predictions: dict[str, dict[str, pd.DataFrame]], default_model: str,
                baseline: str, protocol: str) -> None:
    """``out/summary.json`` (the DVC metric) and the DVC plot tables ``out/plots/per_dim_r.csv``
    (default model and baseline) and ``out/plots/pred_vs_true.csv`` (default model), on
    ``protocol``."""
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps(summary_metrics(eval_dict), indent=2, sort_keys=True, allow_nan=False) + "\n")
    per_dim_r_plot(eval_dict, [default_model, baseline], protocol).to_csv(
        out / "plots" / "per_dim_r.csv", index=False)
    pred_vs_true_plot(labels, predictions, default_model, protocol).to_csv(
        out / "plots" / "pred_vs_true.csv", index=False)
