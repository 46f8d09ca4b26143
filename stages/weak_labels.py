"""DVC stage `weak_labels`: Snorkel labelling functions over the degraded MIDI samples.

Reads data/degrade/samples.csv; writes data/weak_labels/labels.csv (per sample: every LF's
vote, the label model's tier probabilities p0..p3, its tier and the majority vote) and
metrics/weak_labels.json (LFAnalysis with empirical accuracy against the known tiers; label
model vs majority vote vs truth, overall, per family, and on the works outside the development
quarter - GroupKFold fold 0 by work - on which the LF set and label-model settings were chosen).
"""
import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from pianoeval.params import load_params
from pianoeval.weak.labeling import Reference, accuracy_report, aggregate, apply_lfs, lf_analysis

log = logging.getLogger("weak_labels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=Path, default=Path("data/degrade/samples.csv"))
    parser.add_argument("--out", type=Path, default=Path("data/weak_labels/labels.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/weak_labels.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("weak_labels")
    samples = pd.read_csv(args.samples, low_memory=False)
    samples = samples[samples["family"] != "audio"].reset_index(drop=True)  # MIDI features only

    # the reference: the real performances themselves (tier 0), never the degraded ones
    levels = [float(q) for q in params["tier_quantiles"]]
    typical = float(params["typical_quantile"])
    reference = Reference.fit(samples[samples["tier"] == 0], levels + [typical])
    L, names = apply_lfs(samples, reference, levels, typical)
    lm = params["label_model"]
    # the generator's design: one clean sample and one per MIDI family at each tier 1..3
    n_families = samples.loc[samples["tier"] > 0, "family"].nunique()
    prior = np.array([1.0] + [n_families] * 3) / (1 + 3 * n_families)
    agg = aggregate(L, epochs=int(lm["epochs"]), lr=float(lm["lr"]), l2=float(lm["l2"]),
                    seed=int(lm["seed"]), class_balance=prior if lm["design_prior"] else None)
    truth = samples["tier"].to_numpy()
    analysis = lf_analysis(L, names, truth)

    out = samples[["sample", "item", "family", "variant", "tier"]].copy()
    for j, name in enumerate(names):
        out[f"lf_{name}"] = L[:, j]
    for k in range(agg.probs.shape[1]):
        out[f"p{k}"] = agg.probs[:, k].round(6)
    out["label_model"], out["majority"] = agg.label_model, agg.majority
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)

    dev = np.zeros(len(samples), bool)  # the development quarter of the works
    n_splits = min(4, samples["work"].nunique())
    if n_splits >= 2:
        dev[next(GroupKFold(n_splits=n_splits).split(samples, groups=samples["work"]))[1]] = True
    per_family = {}
    for family, rows in out.groupby("family"):
        per_family[family] = {"label_model": accuracy_report(rows["label_model"], rows["tier"]),
                              "majority": accuracy_report(rows["majority"], rows["tier"])}
    analysis = analysis.rename(columns=lambda c: c.lower().replace(" ", "_").replace(".", ""))
    metrics = {
        "n_samples": len(samples), "n_lfs": len(names),
        "label_model": accuracy_report(agg.label_model, truth),
        "majority_vote": accuracy_report(agg.majority, truth),
        "holdout_works": {"n_samples": int((~dev).sum()),
                          "label_model": accuracy_report(agg.label_model[~dev], truth[~dev]),
                          "majority_vote": accuracy_report(agg.majority[~dev], truth[~dev])},
        "by_family": per_family,
        "lf_analysis": {name: {k: (v if isinstance(v, str) else
                                   [int(x) for x in v] if isinstance(v, list) else
                                   round(float(v), 4))
                               for k, v in row.items()} for name, row in analysis.iterrows()},
        "reference_quantiles": {f"{q:g}": {k: round(float(v), 6) for k, v in row.items()}
                                for q, row in reference.quantiles.iterrows()},
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    log.info("label model accuracy %.3f (covered %.3f), majority vote %.3f, over %d samples",
             metrics["label_model"]["accuracy"], metrics["label_model"]["accuracy_covered"],
             metrics["majority_vote"]["accuracy"], len(samples))


if __name__ == "__main__":
    main()
