"""Ingest one data source: resolve it, validate every MIDI, copy it under a normalised name.

A corrupt or empty file is counted and skipped, never fatal; the manifest records every file.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import symusic
from tqdm import tqdm

from pianoeval.config import IngestValidation
from pianoeval.data.download import sha256_file
from pianoeval.data.midi import MidiError, read_midi
from pianoeval.params import mirror_folder

log = logging.getLogger(__name__)

MIDI_SUFFIXES = {".mid", ".midi"}
MANIFEST_COLUMNS = ["file", "source_file", "sha256", "n_notes", "duration_sec", "status", "role"]


def source_folder(name: str, spec: dict, mirror: str | Path, environ: dict | None = None) -> Path:
    """``<ingest.mirror>/<ingest.sources.<name>.dir>``: the folder ``ingest@<name>`` reads.

    Never downloads (``pianoeval download`` does, when asked); FileNotFoundError names the key
    and the path when the folder is missing.
    """
    if not spec.get("dir"):
        raise ValueError(f"ingest.sources.{name}.dir: missing (the source's folder in the mirror)")
    folder = mirror_folder(mirror, environ) / spec["dir"]
    if not folder.is_dir():
        raise FileNotFoundError(f"ingest.sources.{name}.dir: {folder} is not a folder")
    return folder


def normalise_name(relpath: Path) -> Path:
    """Strip whitespace around every path component (one upstream name starts with a space)."""
    return Path(*(part.strip() for part in relpath.parts))


def file_role(relpath: Path) -> str:
    """performance / score / other, from the folder conventions of PercePiano, ASAP, GiantMIDI."""
    if relpath.suffix.lower() not in MIDI_SUFFIXES:
        return "other"
    parts = {p.lower() for p in relpath.parts[:-1]}
    if relpath.stem == "midi_score" or parts & {"score_midi", "score_xml", "ground_truth"}:
        return "score"
    if "giantmidi-piano" in parts:
        return "transcription"
    return "performance"


def validate_midi(path: Path, rules: IngestValidation) -> tuple[str, int, float]:
    """Return (status, n_notes, duration_sec); status is "ok" or the rejection reason."""
    try:
        perf = read_midi(path)
    except MidiError as exc:
        reason = "empty_file" if "empty file" in str(exc) else "parse_error"
        log.warning("rejected %s", exc)
        return reason, 0, 0.0
    n_notes, duration = len(perf.notes), perf.duration_sec
    if n_notes < rules.min_notes:
        status = "no_notes"
    elif n_notes == drum_notes(path):
        status = "drums_only"
    elif duration < rules.min_duration_sec:
        status = "too_short"
    elif duration > rules.max_duration_sec:
        status = "too_long"
    elif perf.notes["duration_sec"].max() > rules.max_note_sec:
        status = "note_too_long"
    else:
        status = "ok"
    if status != "ok":
        log.warning("rejected %s: %s (%d notes, %.2f s)", path, status, n_notes, duration)
    return status, n_notes, duration


def drum_notes(path: Path) -> int:
    """Notes on drum tracks (MIDI channel 10). ``read_midi`` reads every track as piano, so
    a drum-only file would pass as a performance."""
    return sum(len(t.notes) for t in symusic.Score(str(path)).tracks if t.is_drum)


def _manifest_name(rel: Path) -> tuple[str, bool]:
    """(the name as the manifest lists it, whether it is valid UTF-8). A name that is not comes
    from the file system as surrogate escapes, which a CSV cannot hold: its bytes are escaped."""
    raw = os.fsencode(rel)
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), False


def ingest_tree(src: Path, out: Path, rules: IngestValidation) -> list[dict]:
    """Copy every file of ``src`` to ``out`` (names normalised), validating MIDI on the way.

    Rejected files are listed in the manifest but not copied: MIDI that fails validation, a
    name that is not UTF-8 (``bad_name``, listed with its bytes escaped) and a file whose
    normalised name another file already took (``name_collision``).
    """
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
    rows, seen = [], {}
    for path in tqdm(files, desc=f"ingest {src.name}", unit="file"):
        rel = path.relative_to(src)
        target_rel = normalise_name(rel)
        role = file_role(target_rel)
        status, n_notes, duration = ("ok", 0, 0.0)
        source_name, valid_name = _manifest_name(rel)
        if not valid_name:
            status = "bad_name"
            log.warning("rejected %r: the file name is not valid UTF-8", path)
        elif target_rel in seen:
            status = "name_collision"
            log.warning("rejected %s: its normalised name %s is taken by %s", path, target_rel,
                        seen[target_rel])
        elif role != "other":
            status, n_notes, duration = validate_midi(path, rules)
        if status == "ok":
            seen[target_rel] = path
            (out / target_rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / target_rel)
        rows.append({
            "file": _manifest_name(target_rel)[0], "source_file": source_name,
            "sha256": sha256_file(path),
            "n_notes": n_notes, "duration_sec": round(duration, 4), "status": status, "role": role,
        })
    return rows


def summarise(rows: list[dict], how: str) -> dict:
    """Counts for metrics/ingest: files per role, MIDI ok and rejected per reason (a bad name
    or a collision counts even for a non-MIDI file)."""
    midi = [r for r in rows if r["role"] != "other" or r["status"] != "ok"]
    rejected = Counter(r["status"] for r in midi if r["status"] != "ok")
    return {
        "resolved_from": how,
        "n_files": len(rows),
        "midi_ok": sum(r["status"] == "ok" for r in midi),
        "midi_rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "ok_by_role": dict(sorted(Counter(r["role"] for r in midi if r["status"] == "ok").items())),
        "notes_ok": int(sum(r["n_notes"] for r in midi if r["status"] == "ok")),
    }
