"""Which MIDI files make the pre-training corpus, which works are held out, what is excluded.

* Corpus: every ``performance`` of the maestro source (the ASAP performances by default, or a
  full MAESTRO folder given to ``ingest``) and the GiantMIDI files of the roles in params (the
  sample's MAESTRO performances and piano transcriptions by default).
* PercePiano segments are never in the corpus: the test segments of every protocol are the
  point, and the remaining segments are the fine-tuning data.
* The same music played by someone else is also a leak: ASAP has eight performances of Schubert
  D 935 no. 3, one of PercePiano's four works, and those contain every piece-split test passage
  of that work note for note. So every corpus file whose path (or GiantMIDI piece name) matches
  one of ``exclude_works`` (regular expressions naming PercePiano's works) is dropped, and
  written down with the reason.
* Work ids group files of the same music (ASAP: the score folder without its ``_no_repeat``-like
  suffix; GiantMIDI: the piece name that ties the transcription to its MAESTRO performance), so
  the held-out works used for masked-token accuracy share no music with the training files.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

# ASAP folder variants of the same music: "21-1_no_repeat", "24-1_no_2_repeat", "Toccata_repeat",
# "1_no_first_repeat", "9-2_no_trio"
_VARIANT = re.compile(r"_(no_)?([a-z0-9]+_)?repeat$|_no_trio$", re.IGNORECASE)


def asap_work(path: str) -> str:
    """Work id of an ASAP performance ``Composer/.../<folder>/<performer>.mid``: its folder with
    repeat variants merged."""
    parts = path.split("/")[:-1]
    if not parts:
        raise ValueError(f"{path}: an ASAP performance lives in a score folder")
    parts[-1] = _VARIANT.sub("", parts[-1])
    return "asap:" + "/".join(parts)


def giantmidi_works(mapping: pd.DataFrame) -> dict[str, str]:
    """File (``<folder>/<name>``) -> piece name, from GiantMIDI's ground-truth table (columns
    Name, GroundTruth, Maestro, GiantMIDI-Piano): the three versions of a piece share a work."""
    folders = {"GroundTruth": "ground_truth", "Maestro": "maestro",
               "GiantMIDI-Piano": "giantmidi-piano"}
    missing = [c for c in ["Name", *folders] if c not in mapping.columns]
    if missing:
        raise KeyError(f"GiantMIDI ground-truth table lacks columns {missing}")
    out = {}
    for _, row in mapping.iterrows():
        for column, folder in folders.items():
            out[f"{folder}/{row[column]}"] = "giantmidi:" + str(row["Name"])
    return out


def corpus_table(maestro: pd.DataFrame, giantmidi: pd.DataFrame, giant_map: dict[str, str],
                 giantmidi_roles: list[str], exclude_works: list[str]) -> pd.DataFrame:
    """One row per candidate file: ``source``, ``file``, ``work``, ``n_notes``, ``excluded``
    (empty, or the reason). Candidates are the ingest manifests' ``ok`` rows of role
    ``performance`` (maestro) or ``giantmidi_roles`` (giantmidi)."""
    patterns = [re.compile(p, re.IGNORECASE) for p in exclude_works]
    rows = []
    for source, manifest, roles in (("maestro", maestro, ["performance"]),
                                    ("giantmidi", giantmidi, list(giantmidi_roles))):
        ok = manifest[(manifest["status"] == "ok") & manifest["role"].isin(roles)]
        for file, n_notes in zip(ok["file"], ok["n_notes"]):
            if source == "maestro":
                work = asap_work(file)
            else:  # a file outside the sample's table (a full GiantMIDI folder) is its own work
                work = giant_map.get(file, f"giantmidi:{file}")
            hit = next((p.pattern for p in patterns if p.search(file) or p.search(work)), None)
            rows.append({"source": source, "file": file, "work": work, "n_notes": int(n_notes),
                         "excluded": f"PercePiano work /{hit}/" if hit else ""})
    return pd.DataFrame(rows, columns=["source", "file", "work", "n_notes", "excluded"])


def heldout_works(table: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """Works drawn in a seeded random order until they hold at least ``fraction`` of the
    corpus notes (excluded files do not count); at least one work is always left to train on."""
    kept = table[table["excluded"] == ""]
    notes = kept.groupby("work")["n_notes"].sum().sort_index()
    order = np.random.default_rng(seed).permutation(len(notes))
    chosen, total = set(), 0
    for i in order:
        if total >= fraction * notes.sum() or len(chosen) == len(notes) - 1:
            break
        chosen.add(notes.index[i])
        total += notes.iloc[i]
    return chosen


def percepiano_test_segments(splits: pd.DataFrame) -> pd.DataFrame:
    """PercePiano segments that are in the test set of any protocol (``segment``, ``protocols``
    listing which), from ``data/splits.csv``."""
    columns = [c for c in splits.columns if "_split" in c]  # not segment, not group
    hit = {c: splits[c].astype(str) == "test" for c in columns}
    rows = [{"segment": s, "protocols": ";".join(c.replace("_split", "_test") for c in columns
                                                  if hit[c].iloc[i])}
            for i, s in enumerate(splits["segment"])]
    frame = pd.DataFrame(rows, columns=["segment", "protocols"])
    return frame[frame["protocols"] != ""].reset_index(drop=True)


def _ngram_keys(pitch: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per window of ``n`` consecutive pitches (base-128 digits; n <= 9)."""
    if len(pitch) < n:
        return np.empty(0, np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(pitch.astype(np.int64), n)
    return windows @ (128 ** np.arange(n, dtype=np.int64))


def ngram_overlap(corpus: list[np.ndarray], segments: list[np.ndarray], n: int = 8) -> np.ndarray:
    """Leak check: for each segment's pitch sequence (notes in onset order), the share of its
    ``n``-note pitch windows that occur anywhere in the corpus pitch sequences. A passage played
    in the corpus scores near 1 (up to chord-order differences between performances); unrelated
    music near 0."""
    if not 1 <= n <= 9:
        raise ValueError(f"n must be 1..9, got {n}")
    known = np.unique(np.concatenate([_ngram_keys(p, n) for p in corpus] or [np.empty(0, np.int64)]))
    out = np.zeros(len(segments))
    for i, p in enumerate(segments):
        keys = _ngram_keys(p, n)
        if len(keys) and len(known):  # known is sorted and unique: binary search, no re-sort
            pos = np.minimum(np.searchsorted(known, keys), len(known) - 1)
            out[i] = np.mean(known[pos] == keys)
    return out
