"""DVC stage `encode_audio`: rendered audio -> embeddings with one encoder.

Reads data/audio/index.csv, encodes the files of `encode_audio.sources` and
`encode_audio.soundfonts` with `encode_audio.encoder` (its parameter block is
`encode_audio.<encoder>`), and writes data/embeddings/<encoder>/<source>/<soundfont>/<item>
.safetensors (`pooled` plus frame sequences), config.json (the encoder's configuration) and
index.csv beside them, and metrics/encode_audio.json (counts; timings stay in the log).
"""
import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from pianoeval.audio.encode import encode_files, encoding_tasks
from pianoeval.audio.encoders import make_encoder, write_config
from pianoeval.params import load_params

log = logging.getLogger("encode_audio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio", type=Path, default=Path("data/audio"))
    parser.add_argument("--out", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/encode_audio.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("encode_audio")
    name = params["encoder"]
    enc_params = params.get(name) or {}
    encoder = make_encoder(name, enc_params)  # fails fast (e.g. missing MERT weights)
    config = encoder.config()
    del encoder

    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)  # no stale embeddings of an earlier run
    index = pd.read_csv(args.audio / "index.csv", keep_default_na=False)
    tasks = encoding_tasks(index, args.audio, out, list(params["sources"]), params["soundfonts"])
    if not tasks:
        raise SystemExit("encode_audio: no rendered audio matches encode_audio.sources/soundfonts")
    log.info("%s: %d files, %d workers", name, len(tasks), int(params["workers"]))

    start = time.perf_counter()
    records = encode_files(tasks, name, enc_params, workers=int(params["workers"]))
    wall = time.perf_counter() - start
    frame = pd.DataFrame(records)
    frame["source"] = [Path(t[1]).relative_to(out).parts[0] for t in tasks]
    frame["file"] = [Path(t[1]).relative_to(out).as_posix() for t in tasks]
    ok = frame["status"] == "ok"
    log.info("%d files in %.1f s wall: %.2f files/s (%.2f per CPU-second)", len(frame), wall,
             len(frame) / wall, ok.sum() / max(frame["cpu_sec"].sum(), 1e-9))
    frame.loc[~ok, "file"] = ""
    write_config(out, {**config, "sources": list(params["sources"])})
    frame.drop(columns="cpu_sec")[["source", "soundfont", "item", "file", "status", "error",
                                   "n_frames"]].to_csv(out / "index.csv", index=False)

    metrics = {
        "encoder": name,
        "dim": int(config["dim"]),
        "by_soundfont": {sf: {"files": int(g["status"].eq("ok").sum()),
                              "failed": int(g["status"].ne("ok").sum())}
                         for sf, g in frame.groupby("soundfont")},
        "n_failed": int((~ok).sum()),
        "failed": [{"item": r.item, "soundfont": r.soundfont, "error": r.error}
                   for r in frame[~ok].itertuples()],
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
