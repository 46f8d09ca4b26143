"""DVC stage `labels`: PercePiano targets, checked against a recomputation from every rating."""
import json
import logging
from pathlib import Path

import pandas as pd

from pianoeval.data.labels import compare_labels, load_published_labels, recompute_labels
from pianoeval.params import load_params

RAW = Path("data/raw/percepiano")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("labels")
    published = load_published_labels(RAW / params["label_file"])
    ratings = pd.read_csv(RAW / params["ratings_file"])
    recomputed = recompute_labels(ratings, params["max_rating"], params["likert_max"],
                                  params["merge_score2"])
    check = compare_labels(published, recomputed, params["tolerance"])
    if check["n_mismatch"] or check["missing_from_ratings"]:
        raise SystemExit(f"{RAW / params['label_file']}: {check['n_mismatch']} segments differ from "
                         f"the means recomputed from {params['ratings_file']} (tolerance "
                         f"{params['tolerance']}), {len(check['missing_from_ratings'])} missing; "
                         f"first: {check['mismatched'][:3] or check['missing_from_ratings'][:3]}")
    labels = published.merge(recomputed[["segment", "n_raters"]], on="segment")
    labels.insert(1, "n_raters", labels.pop("n_raters"))
    labels.to_csv("data/labels.csv", index=False)

    raters = labels["n_raters"]
    summary = {**check, "raters_per_segment": {"min": int(raters.min()),
               "median": float(raters.median()), "max": int(raters.max())}}
    Path("metrics/labels.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    logging.info("labels: %d segments, recomputed means agree (max |diff| %.2g)",
                 len(labels), check["max_abs_diff"])


if __name__ == "__main__":
    main()
