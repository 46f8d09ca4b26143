"""DVC stage `ingest@<source>`: validate and copy one data source into data/raw/<source>/."""
import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd

from pianoeval.config import load_config
from pianoeval.data.ingest import MANIFEST_COLUMNS, ingest_tree, source_folder, summarise
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="percepiano, maestro or giantmidi")
    args = parser.parse_args()
    log = setup_logging("ingest")
    cfg = load_config("ingest")

    if args.source not in cfg.sources:
        raise SystemExit(f"ingest: {args.source!r} is not in ingest.sources {sorted(cfg.sources)}")
    src = source_folder(args.source, cfg.sources[args.source].model_dump(), cfg.mirror)
    log.info("ingest %s from %s", args.source, src)
    out = Path("data/raw") / args.source
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    rows = ingest_tree(src, out, cfg.validation)
    seconds = time.perf_counter() - start
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(out / "manifest.csv", index=False)

    summary = summarise(rows, "mirror")  # timings stay out of metrics so they diff only on change
    metrics = Path("metrics/ingest") / f"{args.source}.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("%s: %d MIDI ok, %d rejected %s in %.1f s (%.0f files/s)", args.source,
             summary["midi_ok"], summary["midi_rejected"], summary["rejected_by_reason"],
             seconds, len(rows) / seconds)


if __name__ == "__main__":
    main()
