"""DVC stage `align@<source>`: align every performance of a source to its score, note by note.

Reads data/raw/<source>/manifest.csv (status == "ok" files) and params `align` (where the jobs
run: `fanout`); writes data/align/<source>/alignments.csv (one row per performance), notes.csv
(one row per performed note, with the deviation features), segment_features.csv (`align_*`
summaries), and each item's matcher seconds to data/align_timing/<source>.csv, apart, so that a
rerun with identical alignments leaves downstream stages (features, models) untouched.
"""
import argparse
import logging
from pathlib import Path

import pandas as pd

from pianoeval.align.batch import AlignConfig, align_items, limit_items, source_items
from pianoeval.config import load_config
from pianoeval.logs import setup_logging

FLOAT_FORMAT = "%.7g"  # ms precision on a 2,000 s performance; halves notes.csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", choices=["percepiano", "maestro"])
    parser.add_argument("--raw", type=Path, help="default: data/raw/<source>")
    parser.add_argument("--out", type=Path, help="default: data/align/<source>")
    parser.add_argument("--timing", type=Path, help="default: data/align_timing/<source>.csv")
    args = parser.parse_args()
    log = setup_logging("align")
    # AutomaticNoteMatcher logs every window it subsamples ("high number of combinations")
    logging.getLogger("parangonar").setLevel(logging.ERROR)
    config, fanout = load_config("align"), load_config("fanout")  # checked before any work
    raw = args.raw or Path("data/raw") / args.source
    out = args.out or Path("data/align") / args.source
    timing = args.timing or Path("data/align_timing") / f"{args.source}.csv"

    manifest = pd.read_csv(raw / "manifest.csv")
    limits = config.sources[args.source]
    items = limit_items(source_items(args.source, manifest, raw),
                        dict(zip(manifest["file"], manifest["n_notes"])),
                        limits.max_score_notes, limits.max_items)
    cache = config.resume_dir and Path(config.resume_dir) / args.source  # changes no result
    result = align_items(items, AlignConfig.from_params(config.model_dump()),
                         n_jobs=config.n_jobs, cache_dir=cache, fanout=fanout)

    out.mkdir(parents=True, exist_ok=True)
    result.alignments.drop(columns="seconds").to_csv(out / "alignments.csv", index=False)
    timing.parent.mkdir(parents=True, exist_ok=True)
    result.alignments[["segment", "matcher", "status", "seconds"]].to_csv(timing, index=False)
    result.notes.to_csv(out / "notes.csv", index=False, float_format=FLOAT_FORMAT)
    result.segment_features.to_csv(out / "segment_features.csv", index=False)
    for message in result.messages:
        log.warning(message)
    status = result.alignments["status"].value_counts().to_dict()
    log.info("%s: %d items %s, %d notes in %.1f s -> %s", args.source, len(items), status,
             len(result.notes), result.seconds, out)


if __name__ == "__main__":
    main()
