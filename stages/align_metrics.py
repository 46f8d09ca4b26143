"""DVC stage `align_metrics`: metrics/align.json from every source's alignments.csv.

Deterministic (no timings: alignment throughput is in benchmarks/align.md).
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from pianoeval.align.aggregate import alignment_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--align", type=Path, default=Path("data/align"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/align.json"))
    parser.add_argument("sources", nargs="*", default=["percepiano", "maestro"])
    args = parser.parse_args()
    metrics = {source: alignment_summary(pd.read_csv(args.align / source / "alignments.csv"))
               for source in args.sources}
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
