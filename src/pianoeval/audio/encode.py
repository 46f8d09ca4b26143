"""Encode rendered audio files with one encoder: per (item, soundfont) safetensors files, and
the pooled vectors of them all in one file (:data:`POOLED_FILE`), which is what the models read."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.audio.checks import load_audio
from pianoeval.audio.encoders import POOLED_FILE, load_embedding, make_encoder, save_embedding
from pianoeval.fanout import LOCAL, Fanout, fan_out

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["source", "soundfont", "item", "file", "status", "error", "n_frames"]

_ENCODER = None  # one per worker process


def _init(name: str, params: dict) -> None:
    global _ENCODER
    _ENCODER = make_encoder(name, params)


def _encode_one(task: tuple[str, str, str, str]) -> dict:
    src, dst, item, soundfont = task
    record = {"item": item, "soundfont": soundfont, "status": "ok", "error": "", "n_frames": 0,
              "cpu_sec": 0.0}
    cpu = time.process_time()
    try:
        y, sr = load_audio(src)
        arrays = _ENCODER.encode(y, sr)
    except ValueError as exc:
        record.update(status="audio_error", error=str(exc))
        return record
    save_embedding(dst, arrays)
    record["pooled"] = arrays["pooled"]
    frames = [v for k, v in arrays.items() if k.startswith("frames_")]
    record["n_frames"] = int(frames[0].shape[0]) if frames else 0
    record["cpu_sec"] = time.process_time() - cpu
    return record


def encode_files(tasks: list[tuple[str, str, str, str]], name: str, params: dict,
                 workers: int = 1, progress: bool = True, fanout: Fanout = LOCAL) -> list[dict]:
    """Encode (audio path, output path, item, soundfont) tasks, in task order, locally or on
    the Dask cluster of ``fanout``; an unusable audio file gives a record with status
    ``audio_error`` and its message instead of raising."""
    from tqdm import tqdm

    if name != "spectral":  # a torch model: one local process, torch's own threads
        workers = 1
    records = []
    with tqdm(total=len(tasks), desc=f"encode {name}", unit="file", disable=not progress,
              mininterval=2) as bar:
        for rec in fan_out(_encode_one, tasks, workers, fanout, chunksize=8, mp_context="fork",
                           initializer=_init, initargs=(name, params)):
            records.append(rec)
            bar.update()
    return records


def encoding_tasks(index: pd.DataFrame, audio_root: Path, out: Path, sources: list[str],
                   soundfonts: list[str] | None) -> list[tuple[str, str, str, str]]:
    """Tasks for the rendered files (index rows with status ok) of ``sources`` and
    ``soundfonts`` (None: all); output ``<out>/<source>/<soundfont>/<file>.safetensors``
    mirroring the audio layout."""
    rows = index[(index["status"] == "ok") & index["source"].isin(sources)]
    if soundfonts is not None:
        missing = sorted(set(soundfonts) - set(rows["soundfont"]))
        if missing:
            log.warning("soundfonts %s have no renderings: skipped", missing)
        rows = rows[rows["soundfont"].isin(soundfonts)]
    tasks = []
    for r in rows.sort_values(["soundfont", "item"]).itertuples():
        tasks.append((str(audio_root / r.file), str(out / Path(r.file).with_suffix(".safetensors")),
                      r.item, r.soundfont))
    return tasks


def encoded_index(records: list[dict], tasks: list[tuple[str, str, str, str]],
                  out: Path) -> pd.DataFrame:
    """The records of :func:`encode_files` (in task order) with each task's ``source`` and
    ``file`` (its output path relative to ``out``; empty where encoding failed, as no file was
    written). Keeps ``cpu_sec``; the index file holds :data:`INDEX_COLUMNS`."""
    frame = pd.DataFrame(records)
    rel = [Path(t[1]).relative_to(out) for t in tasks]
    frame["source"] = [r.parts[0] for r in rel]
    frame["file"] = [r.as_posix() for r in rel]
    frame.loc[frame["status"] != "ok", "file"] = ""
    return frame


def write_pooled(frame: pd.DataFrame, out: Path) -> Path:
    """Stack the ``pooled`` vectors of an :func:`encoded_index` frame's encoded files (rows with
    status ok, in frame order; :func:`encode_files` returns each with its record) into
    ``out``/:data:`POOLED_FILE`."""
    pooled = list(frame.loc[frame["status"] == "ok", "pooled"])
    path = out / POOLED_FILE
    save_embedding(path, {"pooled": np.stack(pooled) if pooled else np.zeros((0, 0), np.float32)})
    return path


def window_name(file: str) -> str:
    """A windowed render's embedding file ``<source>/<soundfont>/<performance>/<start ms>-<end
    ms>.safetensors`` as ``<performance>@<start ms>-<end ms>`` (the degrade stage's item name)."""
    path = Path(file)
    if len(path.parts) < 4 or "-" not in path.stem:
        raise ValueError(f"{file}: not a windowed render (<source>/<soundfont>/<performance>/"
                         "<start ms>-<end ms>)")
    start, end = (int(t) for t in path.stem.split("-"))
    return f"{Path(*path.parts[2:-1]).as_posix()}@{start}-{end}"


def load_pooled(root: str | Path, source: str, soundfont: str, windows: bool = False
                ) -> tuple[pd.DataFrame, list[str]]:
    """The pooled embeddings of one (source, soundfont) as a table ``segment`` + ``emb_*``
    columns (named after the encoder's feature names in ``config.json``), read from
    ``pooled.safetensors`` (:func:`write_pooled`) and ``index.csv``. ``windows``: the
    source's renders are windows of longer performances (ASAP/MAESTRO), named by
    :func:`window_name` rather than by their performance."""
    root = Path(root)
    config = json.loads((root / "config.json").read_text())
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    encoded = index[index["status"] == "ok"].reset_index(drop=True)
    pooled = load_embedding(root / POOLED_FILE, ("pooled",))["pooled"]
    if len(pooled) != len(encoded):
        raise ValueError(f"{root / POOLED_FILE}: {len(pooled)} rows, but index.csv lists "
                         f"{len(encoded)} encoded files: re-run encode_audio")
    rows = encoded[(encoded["source"] == source) & (encoded["soundfont"] == soundfont)]
    if rows.empty:
        raise ValueError(f"{root}: no embeddings for source {source!r}, soundfont {soundfont!r} "
                         f"(have: {sorted(set(index['soundfont']))})")
    matrix = pooled[rows.index.to_numpy()]
    names = [f"emb_{n}" for n in config.get("feature_names", range(matrix.shape[1]))]
    if len(names) != matrix.shape[1]:
        names = [f"emb_{i:04d}" for i in range(matrix.shape[1])]
    table = pd.DataFrame(matrix.astype(float), columns=names)
    table.insert(0, "segment", rows["file"].map(window_name).to_numpy() if windows
                 else rows["item"].to_numpy())
    return table, names


def encoding_metrics(frame: pd.DataFrame, name: str, dim: int) -> dict:
    """Counts of an :func:`encoded_index` frame: encoded and failed files per soundfont and
    every failure with its error (timings vary between runs, so they stay in the log)."""
    ok = frame["status"] == "ok"
    return {
        "encoder": name,
        "dim": int(dim),
        "by_soundfont": {sf: {"files": int(g["status"].eq("ok").sum()),
                              "failed": int(g["status"].ne("ok").sum())}
                         for sf, g in frame.groupby("soundfont")},
        "n_failed": int((~ok).sum()),
        "failed": [{"item": r.item, "soundfont": r.soundfont, "error": r.error}
                   for r in frame[~ok].itertuples()],
    }
