"""DVC stage: score every model's predictions on every protocol.

Reads ``params.yaml`` section ``evaluate``, ``data/labels.csv`` and
``metrics/predictions/<model>/<protocol>.csv``; writes ``metrics/eval.json``,
``metrics/results.md`` and the plot tables under ``metrics/plots/``.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pianoeval.evaluate.report import (evaluate, per_dim_r_table, pred_vs_true_table,
                                       results_markdown)
from pianoeval.params import load_params

log = logging.getLogger("evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--out", default="metrics")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_params("evaluate", args.params)
    labels = pd.read_csv(args.labels)

    predictions: dict[str, dict[str, pd.DataFrame]] = {}
    for model in params["models"]:
        for protocol in params["protocols"]:
            path = Path(args.predictions) / model / f"{protocol}.csv"
            if not path.exists():
                log.info("skip %s/%s: no %s", model, protocol, path)
                continue
            predictions.setdefault(model, {})[protocol] = pd.read_csv(path)
    n_pairs = sum(len(v) for v in predictions.values())
    log.info("scoring %d (model, protocol) pairs with %d BCa resamples", n_pairs, params["n_resamples"])

    results = evaluate(labels, predictions, params["baselines"], n_resamples=params["n_resamples"],
                       seed=params["seed"], confidence=params["confidence"],
                       progress=lambda pairs: tqdm(pairs, desc="evaluate", unit="pair"),
                       single_modality=params.get("single_modality", []))

    out = Path(args.out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    with open(out / "eval.json", "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    (out / "results.md").write_text(results_markdown(results, confidence=params["confidence"]))
    per_dim_r_table(results).to_csv(out / "plots" / "per_dim_r.csv", index=False)
    pred_vs_true_table(labels, predictions).to_csv(out / "plots" / "pred_vs_true.csv", index=False)
    log.info("wrote %s, %s and %s", out / "eval.json", out / "results.md", out / "plots")


if __name__ == "__main__":
    main()
