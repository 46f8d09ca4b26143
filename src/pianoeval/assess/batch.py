"""`pianoeval assess --batch DIR`: one CSV row per performance, past any bad file."""
from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from pianoeval.assess.analysis import AUDIO_SUFFIXES, MIDI_SUFFIXES, AssessError, Release, assess
from pianoeval.data.dimensions import DIMENSIONS

COLUMNS = ["file", "variant", "duration_sec", "n_notes",
           *[f"{d}{part}" for d in DIMENSIONS for part in ("", "_low", "_high", "_percentile")]]


def batch_files(folder: Path) -> list[Path]:
    """Every MIDI or audio file under ``folder`` (recursively), sorted."""
    if not folder.is_dir():
        raise AssessError(f"{folder}: not a folder")
    suffixes = MIDI_SUFFIXES + AUDIO_SUFFIXES
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _row(path: Path, report: dict) -> dict:
    row = {"file": str(path), "variant": report["variant"],
           "duration_sec": report["summary"]["duration_sec"],
           "n_notes": report["summary"]["n_notes"]}
    for d in report["dimensions"]:
        row[d["name"]] = d["score"]
        row[f"{d['name']}_low"], row[f"{d['name']}_high"] = d["interval"]
        row[f"{d['name']}_percentile"] = d["percentile"]
    return row


def assess_batch(folder: Path, release: Release, out: Path, transcription_mode: str = "accurate"
                 ) -> dict:
    """Write ``out/batch.csv`` (a row per assessed file, flushed as it goes, so an interrupted
    run keeps what it did) and ``out/batch_failed.csv`` (file, reason). A file that fails is
    counted and skipped, whatever the error."""
    files = batch_files(folder)
    out.mkdir(parents=True, exist_ok=True)
    n_ok, failed = 0, []
    with open(out / "batch.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        for path in tqdm(files, desc="assess", unit="file"):
            try:
                report = assess(path, release, None, transcription_mode)
            except AssessError as exc:
                failed.append({"file": str(path), "reason": str(exc)})
                continue
            except Exception as exc:  # one bad file must never stop the batch; it is reported
                failed.append({"file": str(path), "reason": f"{type(exc).__name__}: {exc}"})
                continue
            writer.writerow(_row(path, report))
            fh.flush()
            n_ok += 1
    with open(out / "batch_failed.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["file", "reason"])
        writer.writeheader()
        writer.writerows(failed)
    return {"n_ok": n_ok, "n_failed": len(failed), "csv": out / "batch.csv", "failed": failed}
