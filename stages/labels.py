"""DVC stage `labels`: PercePiano targets, checked against a recomputation from every rating."""
import json
from pathlib import Path

import pandas as pd

from pianoeval.config import load_config
from pianoeval.data.labels import compare_labels, load_published_labels, recompute_labels
from pianoeval.logs import setup_logging

RAW = Path("data/raw/percepiano")


def main() -> None:
    log = setup_logging("labels")
    config = load_config("labels")
    published = load_published_labels(RAW / config.label_file)
    ratings = pd.read_csv(RAW / config.ratings_file)
    recomputed = recompute_labels(ratings, config.max_rating, config.likert_max,
                                  config.merge_score2)
    check = compare_labels(published, recomputed, config.tolerance)
    if check["n_mismatch"] or check["missing_from_ratings"]:
        raise SystemExit(f"{RAW / config.label_file}: {check['n_mismatch']} segments differ from "
                         f"the means recomputed from {config.ratings_file} (tolerance "
                         f"{config.tolerance}), {len(check['missing_from_ratings'])} missing; "
                         f"first: {check['mismatched'][:3] or check['missing_from_ratings'][:3]}")
    labels = published.merge(recomputed[["segment", "n_raters"]], on="segment")
    labels.insert(1, "n_raters", labels.pop("n_raters"))
    labels.to_csv("data/labels.csv", index=False)

    raters = labels["n_raters"]
    summary = {**check, "raters_per_segment": {"min": int(raters.min()),
               "median": float(raters.median()), "max": int(raters.max())}}
    Path("metrics/labels.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("labels: %d segments, recomputed means agree (max |diff| %.2g)",
             len(labels), check["max_abs_diff"])


if __name__ == "__main__":
    main()
