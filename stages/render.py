"""DVC stage `render`: MIDI -> 24 kHz mono FLAC with FluidSynth, one rendering per (item,
soundfont).

Renders every PercePiano performance segment (manifest status ok, role performance) and windows
of the ASAP/MAESTRO performances (for the alignment stage) with each available soundfont of
`render.soundfonts`. Writes data/audio/<source>/<soundfont>/..., data/audio/index.csv (one row
per output file, relative paths) and metrics/render.json (counts; timings stay in the log).
"""
import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from pianoeval.audio.render import (RenderConfig, available_soundfonts, maestro_jobs,
                                    percepiano_jobs, run_jobs)
from pianoeval.params import load_params

log = logging.getLogger("render")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--percepiano", type=Path, default=Path("data/raw/percepiano"))
    parser.add_argument("--maestro", type=Path, default=Path("data/raw/maestro"))
    parser.add_argument("--out", type=Path, default=Path("data/audio"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/render.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("render")
    config = RenderConfig.from_params(params)
    soundfonts = available_soundfonts(params["soundfonts"])
    if not soundfonts:
        raise SystemExit(f"render: none of the soundfonts {params['soundfonts']} was found")
    log.info("soundfonts: %s", ", ".join(f"{n} ({p})" for n, p in soundfonts))

    for sub in ("percepiano", "maestro"):  # no stale renderings of an earlier run
        shutil.rmtree(args.out / sub, ignore_errors=True)
    jobs = percepiano_jobs(pd.read_csv(args.percepiano / "manifest.csv"), args.percepiano,
                           soundfonts, args.out / "percepiano")
    win = params["maestro"]
    if win["enabled"]:
        jobs += maestro_jobs(pd.read_csv(args.maestro / "manifest.csv"), args.maestro, soundfonts,
                             args.out / "maestro", float(win["window_sec"]), float(win["hop_sec"]),
                             win["max_performances"], win["max_windows_per_performance"])
    log.info("%d rendering jobs (%d workers)", len(jobs), int(params["workers"]))

    start = time.perf_counter()
    records = run_jobs(jobs, config, workers=int(params["workers"]))
    wall = time.perf_counter() - start
    index = pd.DataFrame(records)
    ok = index["status"] == "ok"
    # seconds actually synthesised: a performance's windows come from one rendering of 0..last end
    audio_sec = index[ok].groupby(["source", "item", "soundfont"])["end_sec"].max().sum()
    cpu_sec = index["cpu_sec"].sum()
    log.info("%.0f s of audio in %.1f s wall (%d workers): %.0fx real time per core by CPU time, "
             "%.0fx per worker by wall time", audio_sec, wall, int(params["workers"]),
             audio_sec / max(cpu_sec, 1e-9), audio_sec / max(wall * int(params["workers"]), 1e-9))

    index.loc[ok, "file"] = [Path(f).relative_to(args.out).as_posix()
                             for f in index.loc[ok, "file"]]
    index.loc[~ok, "file"] = ""
    index = index.drop(columns="cpu_sec").sort_values(["source", "soundfont", "item", "start_sec"],
                                                      ignore_index=True)
    ok = index["status"] == "ok"
    args.out.mkdir(parents=True, exist_ok=True)
    index.to_csv(args.out / "index.csv", index=False)
    (args.out / "config.json").write_text(json.dumps(
        {**config.to_dict(), "soundfonts": {n: str(p) for n, p in soundfonts}}, indent=2) + "\n")

    failed = index[~ok]
    metrics = {
        "soundfonts": [n for n, _ in soundfonts],
        "skipped_soundfonts": [s for s in params["soundfonts"]
                               if s not in {n for n, _ in soundfonts} and Path(str(s)).stem
                               not in {n for n, _ in soundfonts}],
        "sample_rate": config.sample_rate,
        "normalize": config.normalize,
        "by_source": {
            f"{src}/{sf}": {"files": int(g["status"].eq("ok").sum()),
                            "failed": int(g["status"].ne("ok").sum()),
                            "audio_hours": round(float(g.loc[g["status"] == "ok", "duration_sec"]
                                                       .sum()) / 3600, 4)}
            for (src, sf), g in index.groupby(["source", "soundfont"])},
        "n_failed": int(len(failed)),
        "failed": [{"item": r.item, "soundfont": r.soundfont, "status": r.status, "error": r.error}
                   for r in failed.drop_duplicates(["item", "soundfont"]).itertuples()],
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("%d files ok, %d failed -> %s", int(ok.sum()), len(failed), args.out / "index.csv")


if __name__ == "__main__":
    main()
