"""DVC stage `weak_labels`: Snorkel labelling functions over the degraded MIDI samples.

Reads data/degrade/samples.csv; writes data/weak_labels/labels.csv (per sample: every LF's
vote, the label model's tier probabilities p0..p3, its tier and the majority vote) and
metrics/weak_labels.json (LFAnalysis with empirical accuracy against the known tiers; label
model vs majority vote vs truth, overall, per family, and on the works outside the development
quarter - GroupKFold fold 0 by work - on which the LF set and label-model settings were chosen).
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from pianoeval.logs import setup_logging
from pianoeval.params import load_params
from pianoeval.weak.report import development_mask, labels_table, weak_label, weak_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=Path, default=Path("data/degrade/samples.csv"))
    parser.add_argument("--out", type=Path, default=Path("data/weak_labels/labels.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/weak_labels.json"))
    args = parser.parse_args()
    log = setup_logging("weak_labels")
    params = load_params("weak_labels")
    samples = pd.read_csv(args.samples, low_memory=False)
    samples = samples[samples["family"] != "audio"].reset_index(drop=True)  # MIDI features only

    weak = weak_label(samples, params)
    labels = labels_table(samples, weak)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)

    metrics = weak_metrics(labels, weak, development_mask(samples["work"]))
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    log.info("label model accuracy %.3f (covered %.3f), majority vote %.3f, over %d samples",
             metrics["label_model"]["accuracy"], metrics["label_model"]["accuracy_covered"],
             metrics["majority_vote"]["accuracy"], len(samples))


if __name__ == "__main__":
    main()
