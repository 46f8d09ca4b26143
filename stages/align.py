"""DVC stage `align@<source>`: align every performance of a source to its score, note by note.

Reads data/raw/<source>/manifest.csv (status == "ok" files) and params `align`; writes
data/align/<source>/alignments.csv (one row per performance), notes.csv (one row per performed
note, with the deviation features) and segment_features.csv (the `align_*` summaries). The
matcher's seconds per item go to data/align_timing/<source>.csv, outside data/align/<source>, so
that a rerun with identical alignments leaves downstream stages (features, models) untouched.
"""
import argparse
import logging
from pathlib import Path

import pandas as pd

from pianoeval.align.batch import AlignConfig, align_items, limit_items, source_items
from pianoeval.align.match import MATCHERS
from pianoeval.params import load_params

log = logging.getLogger("align")
FLOAT_FORMAT = "%.7g"  # ms precision on a 2,000 s performance; halves notes.csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", choices=["percepiano", "maestro"])
    parser.add_argument("--raw", type=Path, help="default: data/raw/<source>")
    parser.add_argument("--out", type=Path, help="default: data/align/<source>")
    parser.add_argument("--timing", type=Path, help="default: data/align_timing/<source>.csv")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # AutomaticNoteMatcher logs every window it subsamples ("high number of combinations")
    logging.getLogger("parangonar").setLevel(logging.ERROR)
    params = load_params("align")
    matchers = params.get("matchers") or []
    if not matchers or set(matchers) - set(MATCHERS):  # before any work: all items would fail
        raise SystemExit(f"params.yaml align.matchers: {matchers!r} must name one or more of "
                         f"{', '.join(MATCHERS)}")
    raw = args.raw or Path("data/raw") / args.source
    out = args.out or Path("data/align") / args.source
    timing = args.timing or Path("data/align_timing") / f"{args.source}.csv"

    manifest = pd.read_csv(raw / "manifest.csv")
    limits = params["sources"][args.source] or {}
    score_notes = dict(zip(manifest["file"], manifest["n_notes"]))
    items = limit_items(source_items(args.source, manifest, raw), score_notes,
                        limits.get("max_score_notes"), limits.get("max_items"))
    cache = params.get("resume_dir")  # not a DVC param: it changes no result
    result = align_items(items, AlignConfig.from_params(params), n_jobs=int(params["n_jobs"]),
                         cache_dir=None if cache is None else Path(cache) / args.source)

    out.mkdir(parents=True, exist_ok=True)
    result.alignments.drop(columns="seconds").to_csv(out / "alignments.csv", index=False)
    timing.parent.mkdir(parents=True, exist_ok=True)
    result.alignments[["segment", "matcher", "status", "seconds"]].to_csv(timing, index=False)
    result.notes.to_csv(out / "notes.csv", index=False, float_format=FLOAT_FORMAT)
    result.segment_features.to_csv(out / "segment_features.csv", index=False)
    for message in result.messages:
        log.warning(message)
    status = result.alignments["status"].value_counts().to_dict()
    n_aligned = len(items) - status.get("skipped", 0)
    log.info("%s: %d items %s, %d notes in %.1f s (%.1f items/s) -> %s", args.source, len(items),
             status, len(result.notes), result.seconds, n_aligned / max(result.seconds, 1e-9), out)


if __name__ == "__main__":
    main()
