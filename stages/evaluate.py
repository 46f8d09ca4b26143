"""DVC stage: score every model's predictions on every protocol, and compare models in pairs.

Reads ``params.yaml`` section ``evaluate``, ``data/labels.csv``, ``data/splits.csv`` (folds and
passage groups) and ``metrics/predictions/<model>/<protocol>.csv``; writes ``metrics/eval.json``,
``metrics/comparisons.json``, ``metrics/results.md``, the DVC metric ``metrics/summary.json`` and
the DVC plot tables under ``metrics/plots/``.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pianoeval.evaluate.comparisons import compare_models, comparison_pairs
from pianoeval.evaluate.inputs import load_predictions
from pianoeval.evaluate.report import evaluate, results_markdown
from pianoeval.evaluate.views import per_dim_r_plot, pred_vs_true_plot, summary_metrics
from pianoeval.params import load_params

log = logging.getLogger("evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--out", default="metrics")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = load_params("evaluate", args.params)
    labels, splits = pd.read_csv(args.labels), pd.read_csv(args.splits, dtype=str)
    groups = dict(zip(splits["segment"], splits["group"]))
    predictions = load_predictions(Path(args.predictions), p["models"], p["protocols"], splits)
    boot = dict(n_resamples=p["n_resamples"], seed=p["seed"], confidence=p["confidence"])
    log.info("scoring %d prediction files, CIs from %d passage-group resamples",
             sum(len(v) for v in predictions.values()), p["n_resamples"])
    results = evaluate(labels, predictions, p["baselines"], groups=groups,
                       progress=lambda pairs: tqdm(pairs, desc="evaluate", unit="file"),
                       single_modality=p["single_modality"], **boot)
    pairs = comparison_pairs(results, p["default_model"], p["single_modality"],
                             p["comparisons"]["baseline"], p["comparisons"]["ablations"],
                             p["comparisons"]["pairs"])
    comparisons = compare_models(labels, predictions, pairs, p["protocols"], groups, **boot)

    out = Path(args.out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, data in (("eval.json", results), ("comparisons.json", comparisons),
                       ("summary.json", summary_metrics(results))):
        (out / name).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    (out / "results.md").write_text(results_markdown(results, confidence=p["confidence"]))
    shown = [p["default_model"], p["comparisons"]["baseline"]]
    per_dim_r_plot(results, shown, p["plot_protocol"]).to_csv(out / "plots" / "per_dim_r.csv",
                                                              index=False)
    pred_vs_true_plot(labels, predictions, p["default_model"], p["plot_protocol"]).to_csv(
        out / "plots" / "pred_vs_true.csv", index=False)
    log.info("wrote eval.json, comparisons.json (%d comparisons), results.md and plots/ in %s",
             sum(len(v) for v in comparisons.values()), out)


if __name__ == "__main__":
    main()
