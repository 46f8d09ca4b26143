"""DVC stage: score every model's predictions on every protocol, and compare models in pairs.

Reads ``params.yaml`` section ``evaluate``, ``data/labels.csv``, ``data/splits.csv`` (folds and
passage groups) and ``metrics/predictions/<model>/<protocol>.csv``; writes ``metrics/eval.json``,
``metrics/comparisons.json``, ``metrics/results.md``, the DVC metric ``metrics/summary.json`` and
the DVC plot tables under ``metrics/plots/``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pianoeval.config import load_config
from pianoeval.evaluate.comparisons import compare_models, comparison_pairs
from pianoeval.evaluate.inputs import load_predictions
from pianoeval.evaluate.report import evaluate, results_markdown
from pianoeval.evaluate.views import write_views
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for arg, default in (("params", "params.yaml"), ("labels", "data/labels.csv"),
                         ("splits", "data/splits.csv"), ("predictions", "metrics/predictions"),
                         ("out", "metrics")):
        parser.add_argument(f"--{arg}", default=default)
    args = parser.parse_args()
    log = setup_logging("evaluate")
    c = load_config("evaluate", args.params)
    labels, splits = pd.read_csv(args.labels), pd.read_csv(args.splits, dtype=str)
    groups = dict(zip(splits["segment"], splits["group"]))
    predictions = load_predictions(Path(args.predictions), c.models, c.protocols, splits)
    boot = dict(n_resamples=c.n_resamples, seed=c.seed, confidence=c.confidence)
    log.info("scoring %d prediction files, CIs from %d passage-group resamples",
             sum(len(v) for v in predictions.values()), c.n_resamples)
    results = evaluate(labels, predictions, c.baselines, groups=groups,
                       progress=lambda pairs: tqdm(pairs, desc="evaluate", unit="file"),
                       single_modality=c.single_modality, **boot)
    pairs = comparison_pairs(results, c.default_model, c.single_modality, c.comparisons.baseline,
                             c.comparisons.ablations, c.comparisons.pairs)
    comparisons = compare_models(labels, predictions, pairs, c.protocols, groups, **boot)

    out = Path(args.out)
    write_views(out, results, labels, predictions, c.default_model, c.comparisons.baseline,
                c.plot_protocol)  # creates out/
    for name, data in (("eval.json", results), ("comparisons.json", comparisons)):
        (out / name).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    (out / "results.md").write_text(results_markdown(results, confidence=c.confidence))
    log.info("wrote eval.json, comparisons.json (%d comparisons), results.md, summary.json and "
             "plots/ in %s", sum(len(v) for v in comparisons.values()), out)


if __name__ == "__main__":
    main()
