"""The render stage's batch: what to render, and the index, log line and counts of what was.

Only the render stage imports this module; the rendering itself is ``pianoeval.audio.render``.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pianoeval.audio.render import RenderConfig, maestro_jobs, percepiano_jobs, run_job
from pianoeval.data.download import sha256_file
from pianoeval.fanout import LOCAL, Fanout, fan_out


def render_jobs(percepiano: Path, maestro: Path, soundfonts: list, out: Path,
                windows: dict) -> list:
    """Every PercePiano performance segment (its ingest manifest), then, when
    ``windows["enabled"]``, the ASAP/MAESTRO windows (``render.maestro``), per soundfont."""
    jobs = percepiano_jobs(pd.read_csv(percepiano / "manifest.csv"), percepiano, soundfonts,
                           out / "percepiano")
    if windows["enabled"]:
        jobs += maestro_jobs(pd.read_csv(maestro / "manifest.csv"), maestro, soundfonts,
                             out / "maestro", float(windows["window_sec"]),
                             float(windows["hop_sec"]), windows["max_performances"],
                             windows["max_windows_per_performance"])
    return jobs


def render_all(jobs: list, config: RenderConfig, workers: int, fanout: Fanout = LOCAL,
               progress: bool = True) -> list[dict]:
    """``run_job`` over ``jobs`` (inline for 1 worker, else forked processes, or the Dask
    cluster of ``fanout``), in job order: the records of every file."""
    chunk = max(1, min(16, len(jobs) // (max(workers, 1) * 8) or 1))
    records = []
    with tqdm(total=len(jobs), desc="render", unit="file", disable=not progress,
              mininterval=2) as bar:
        for recs in fan_out(partial(run_job, config=config), jobs, workers, fanout,
                            chunksize=chunk, mp_context="fork"):
            records.extend(recs)
            bar.update()
    return records


def render_index(records: list[dict], out: Path) -> pd.DataFrame:
    """One row per rendered file (``render_all`` records): paths relative to ``out`` ("" where
    rendering failed) and each file's sha256, sorted by source, soundfont, item and start; CPU
    time dropped (it varies from run to run, and the index is a DVC output). The stages that
    read the renders depend on this index, not on the folder: its hashes stand for the files,
    and DVC hashes the folder once, as this stage's output."""
    index = pd.DataFrame(records)
    ok = index["status"] == "ok"
    index.loc[ok, "sha256"] = [sha256_file(f) for f in index.loc[ok, "file"]]
    index.loc[~ok, "sha256"] = ""
    index.loc[ok, "file"] = [Path(f).relative_to(out).as_posix() for f in index.loc[ok, "file"]]
    index.loc[~ok, "file"] = ""
    return index.drop(columns="cpu_sec").sort_values(["source", "soundfont", "item", "start_sec"],
                                                     ignore_index=True)


def speed_line(records: list[dict], wall_sec: float, workers: int) -> str:
    """Seconds of audio synthesised against CPU and wall time. A performance's windows come from
    one rendering of 0 .. its last window's end, so that end is what was synthesised."""
    frame = pd.DataFrame(records)
    ok = frame["status"] == "ok"
    audio_sec = frame[ok].groupby(["source", "item", "soundfont"])["end_sec"].max().sum()
    cpu_sec = frame["cpu_sec"].sum()
    return (f"{audio_sec:.0f} s of audio in {wall_sec:.1f} s wall ({workers} workers): "
            f"{audio_sec / max(cpu_sec, 1e-9):.0f}x real time per core by CPU time, "
            f"{audio_sec / max(wall_sec * workers, 1e-9):.0f}x per worker by wall time")


def render_metrics(index: pd.DataFrame, found: list[str], requested: list, sample_rate: int,
                   normalize) -> dict:
    """metrics/render.json: the soundfonts used and those requested but not found (by name or
    by a path's stem), files, failures and audio hours per source and soundfont, and each
    failed (item, soundfont) with its error."""
    ok = index["status"] == "ok"
    failed = index[~ok]
    return {
        "soundfonts": list(found),
        "skipped_soundfonts": [s for s in requested
                               if s not in set(found) and Path(str(s)).stem not in set(found)],
        "sample_rate": sample_rate,
        "normalize": normalize,
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
