"""DVC stage `features`: symbolic features of every PercePiano performance segment.

Reads data/raw/percepiano/manifest.csv (only status == "ok" files) and the align stage's
segment summaries, writes data/features/features.csv (one row per segment: symbolic features,
then the `align_*` ones) and metrics/features.json.
"""
import argparse
import json
import time
from pathlib import Path

import pandas as pd

from pianoeval.align.aggregate import merge_alignment_features
from pianoeval.config import load_config
from pianoeval.features.inputs import build_items
from pianoeval.features.symbolic import extract_features
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw/percepiano"))
    parser.add_argument("--out", type=Path, default=Path("data/features/features.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/features.json"))
    parser.add_argument("--align", type=Path,
                        default=Path("data/align/percepiano/segment_features.csv"))
    args = parser.parse_args()
    log = setup_logging("features")
    cfg = load_config("features")

    items = build_items(pd.read_csv(args.raw / "manifest.csv"), args.raw)
    start = time.perf_counter()
    frame, failed = extract_features(items, n_jobs=cfg.n_jobs,
                                     chord_window_sec=cfg.chord_window_sec)
    seconds = time.perf_counter() - start
    if frame.empty:
        raise SystemExit(f"features: no segment could be read ({len(failed)} failed)")
    frame = merge_alignment_features(frame, args.align)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    metrics = {
        "n_segments": len(frame),
        "n_features": frame.shape[1] - 1,
        "n_failed": len(failed),
        "failed": failed,
    }  # timings stay in the log (and `make bench`), so metrics only diff when results change
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("%d segments x %d features in %.1f s, %.0f notes/s (%d failed) -> %s",
             metrics["n_segments"], metrics["n_features"], seconds,
             frame["n_notes"].sum() / seconds, len(failed), args.out)


if __name__ == "__main__":
    main()
