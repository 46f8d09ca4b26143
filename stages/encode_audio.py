"""DVC stage `encode_audio`: rendered audio -> embeddings with one encoder.

Reads data/audio/index.csv, encodes the files of `encode_audio.sources` and
`encode_audio.soundfonts` with `encode_audio.encoder` (its parameter block is
`encode_audio.<encoder>`), and writes data/embeddings/<encoder>/<source>/<soundfont>/<item>
.safetensors (`pooled` plus frame sequences), config.json (the encoder's configuration),
index.csv and pooled.safetensors (every file's pooled vector) beside them, and
metrics/encode_audio.json (counts; timings stay in the log).
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd

from pianoeval.audio.encode import (INDEX_COLUMNS, encode_files, encoded_index, encoding_metrics,
                                    encoding_tasks, write_pooled)
from pianoeval.audio.encoders import make_encoder, write_config
from pianoeval.config import load_config
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for arg, default in (("audio", "data/audio"), ("out", "data/embeddings"),
                         ("metrics", "metrics/encode_audio.json")):
        parser.add_argument(f"--{arg}", type=Path, default=Path(default))
    args = parser.parse_args()
    log = setup_logging("encode_audio")
    cfg, fanout = load_config("encode_audio"), load_config("fanout")  # both checked first
    name, sources, workers = cfg.encoder, list(cfg.sources), cfg.workers
    enc_params = getattr(cfg, name).model_dump()  # the block encode_audio.<encoder>
    config = make_encoder(name, enc_params).config()  # fails fast, e.g. without MERT weights
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)  # no stale embeddings of an earlier run
    index = pd.read_csv(args.audio / "index.csv", keep_default_na=False)
    tasks = encoding_tasks(index, args.audio, out, sources, cfg.soundfonts)
    if not tasks:
        raise SystemExit("encode_audio: no rendered audio matches encode_audio.sources/soundfonts")
    log.info("%s: %d files, %d workers", name, len(tasks), workers)
    start = time.perf_counter()
    records = encode_files(tasks, name, enc_params, workers=workers, fanout=fanout)
    wall = time.perf_counter() - start
    frame = encoded_index(records, tasks, out)
    log.info("%d files in %.1f s wall: %.2f files/s (%.2f per CPU-second)", len(frame), wall,
             len(frame) / wall, frame["status"].eq("ok").sum() / max(frame["cpu_sec"].sum(), 1e-9))
    write_config(out, {**config, "sources": sources})
    frame[INDEX_COLUMNS].to_csv(out / "index.csv", index=False)
    write_pooled(frame, out)
    metrics = encoding_metrics(frame, name, config["dim"])
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
