"""DVC stage `render`: MIDI -> mono FLAC with FluidSynth, one rendering per (item, soundfont).

Renders every PercePiano performance segment (manifest status ok, role performance) and windows
of the ASAP/MAESTRO performances (for the alignment stage) with each available soundfont of
`render.soundfonts`. Writes data/audio/<source>/<soundfont>/..., data/audio/index.csv (one row
per output file, relative paths) and metrics/render.json (counts; timings stay in the log).
"""
import argparse
import json
import shutil
import time
from pathlib import Path

from pianoeval.audio.render import RenderConfig, available_soundfonts
from pianoeval.audio.render_batch import (render_all, render_index, render_jobs, render_metrics,
                                          speed_line)
from pianoeval.config import load_config
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for arg, default in (("percepiano", "data/raw/percepiano"), ("maestro", "data/raw/maestro"),
                         ("out", "data/audio"), ("metrics", "metrics/render.json")):
        parser.add_argument(f"--{arg}", type=Path, default=Path(default))
    args = parser.parse_args()
    log = setup_logging("render")
    cfg, fanout = load_config("render"), load_config("fanout")  # both checked before any work
    config = RenderConfig.from_params(cfg.model_dump())
    soundfonts = available_soundfonts(cfg.soundfonts)
    if not soundfonts:
        raise SystemExit(f"render: none of the soundfonts {cfg.soundfonts} was found")
    log.info("soundfonts: %s", ", ".join(f"{n} ({p})" for n, p in soundfonts))

    for sub in ("percepiano", "maestro"):  # no stale renderings of an earlier run
        shutil.rmtree(args.out / sub, ignore_errors=True)
    jobs = render_jobs(args.percepiano, args.maestro, soundfonts, args.out,
                       cfg.maestro.model_dump())
    log.info("%d rendering jobs (%d workers)", len(jobs), cfg.workers)

    start = time.perf_counter()
    records = render_all(jobs, config, cfg.workers, fanout)
    log.info(speed_line(records, time.perf_counter() - start, cfg.workers))
    index = render_index(records, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    index.to_csv(args.out / "index.csv", index=False)
    (args.out / "config.json").write_text(json.dumps(
        {**config.to_dict(), "soundfonts": {n: str(p) for n, p in soundfonts}}, indent=2) + "\n")
    metrics = render_metrics(index, [n for n, _ in soundfonts], cfg.soundfonts,
                             config.sample_rate, config.normalize)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("%d files ok, %d failed -> %s", int((index["status"] == "ok").sum()),
             metrics["n_failed"], args.out / "index.csv")


if __name__ == "__main__":
    main()
