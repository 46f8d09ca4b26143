"""How much the piece split's random test draw alone moves the scores.

Re-draws the piece split with seeds 0..N-1 (same rule and music groups as the `splits` stage,
groups read from data/splits.csv), refits the baselines on the same features and scores
`piece_test` and `piece_cv`; writes a markdown table.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import make_splits
from pianoeval.evaluate.metrics import r2
from pianoeval.models.baselines import cross_fit
from pianoeval.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def piece_scores(data, feature_cols, splits, params, model, seed) -> dict:
    predictions, _ = cross_fit(model, params, data, feature_cols, splits, [f"piece_s{seed}"])
    truth = data.set_index("segment")[list(DIMENSIONS)]
    test = predictions[f"piece_s{seed}_test"]
    per_model = [r2(truth.loc[g.segment], g[list(DIMENSIONS)]) for _, g in test.groupby("fold")]
    cv = predictions[f"piece_s{seed}_cv"]
    return {"piece_test": float(np.mean(per_model)),
            "piece_cv": r2(truth.loc[cv.segment], cv[list(DIMENSIONS)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "seed_sensitivity.md")
    args = parser.parse_args()
    split_params = load_params("splits", ROOT / "params.yaml")
    params = load_params("baselines", ROOT / "params.yaml")
    labels = pd.read_csv(ROOT / "data" / "labels.csv")
    features = pd.read_csv(ROOT / "data" / "features" / "features.csv")
    data = labels.merge(features, on="segment")
    feature_cols = [c for c in features.columns if c != "segment"]

    groups = pd.read_csv(ROOT / "data" / "splits.csv").set_index("segment")["group"]
    names = data["segment"].tolist()
    splits = make_splits(names, groups.loc[names].tolist(), list(range(args.seeds)),
                         split_params["test_fraction"], split_params["n_folds"])
    rows = []
    for seed in range(args.seeds):
        for model in params["models"]:
            rows.append({"seed": seed, "model": model,
                         **piece_scores(data, feature_cols, splits, params, model, seed)})
    frame = pd.DataFrame(rows)
    summary = frame.groupby("model")[["piece_test", "piece_cv"]].agg(["mean", "std", "min", "max"])
    lines = ["| model | protocol | mean R² | sd | min | max |", "|---|---|---|---|---|---|"]
    for model, row in summary.iterrows():
        for protocol in ("piece_test", "piece_cv"):
            s = row[protocol]
            lines.append(f"| {model} | {protocol} | {s['mean']:.3f} | {s['std']:.3f} | "
                         f"{s['min']:.3f} | {s['max']:.3f} |")
    args.out.write_text(
        "# Piece-split seed sensitivity\n\n"
        f"R² of the baselines when only the piece split's seeded draw changes (seeds 0..{args.seeds - 1}; "
        f"the committed split uses seed {split_params['seed']}). Written by "
        "`benchmarks/seed_sensitivity.py` (`make bench`).\n\n" + "\n".join(lines) + "\n\n"
        "Per seed:\n\n" + frame.round(3).to_markdown(index=False) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
