"""The items of a source (performance + score) and the parallel alignment run over them.

Statuses (``alignments.csv``): ``ok``; ``low_match`` (aligned, match rate below
``min_match_rate`` after every matcher: kept and flagged); ``failed`` (every matcher raised or
matched too little: notes kept, unaligned); ``no_score`` (no usable score: notes kept on the
performance's own beat grid); ``unreadable`` (the performance cannot be read or has no notes:
no notes); ``skipped`` (left out by a CPU limit: no notes). Only ``unreadable`` and ``skipped``
items are missing from notes.csv; none of them stops the batch.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pianoeval.align.aggregate import SEGMENT_FEATURES, segment_features
from pianoeval.align.deviations import NOTE_COLUMNS, DeviationConfig, note_deviations
from pianoeval.align.match import MATCHERS, align, performance_note_array
from pianoeval.align.resume import ResultCache
from pianoeval.align.score import ScoreError, ScoreInfo, load_score
from pianoeval.data.midi import MidiError, read_midi
from pianoeval.data.segments import parse_segment, score_paths
from pianoeval.fanout import LOCAL, Fanout, fan_out
from pianoeval.features.inputs import build_items

ALIGNMENT_COLUMNS = ("segment", "score_file", "matcher", "status", "n_matched", "n_inserted",
                     "n_deleted", "match_rate", "seconds")


@dataclass(frozen=True)
class AlignConfig:
    matchers: tuple[str, ...] = MATCHERS
    min_match_rate: float = 0.85
    min_usable_rate: float = 0.3
    deviations: DeviationConfig = field(default_factory=DeviationConfig)

    @classmethod
    def from_params(cls, params: dict) -> "AlignConfig":
        """From the ``align`` section of params.yaml."""
        return cls(matchers=tuple(params["matchers"]),
                   min_match_rate=float(params["min_match_rate"]),
                   min_usable_rate=float(params["min_usable_rate"]),
                   deviations=DeviationConfig(
                       tempo_window_beats=float(params["tempo_window_beats"]),
                       velocity_local_beats=int(params["velocity_local_beats"]),
                       phrase_bars=int(params["phrase_bars"])))


@dataclass(frozen=True)
class Item:
    """One performance to align. ``score_file`` is how the score is reported (relative path)."""

    name: str
    performance: str
    score: str | None = None
    score_file: str = ""
    skip: str | None = None  # a reason to leave it out before any work (status ``skipped``)


# --- items ----------------------------------------------------------------------------------

def percepiano_items(manifest: pd.DataFrame, raw: Path) -> list[Item]:
    """Every PercePiano performance segment with its score: the passage's score MIDI that passed
    ingest (``Score`` preferred over ``Score2``), else its MusicXML in ``score_xml/`` (the two
    empty score MIDIs, ``Schubert_D935_no.3_4bars_Score_43/44``), else none."""
    xml = score_paths(raw / "score_xml", pattern="*.musicxml")
    items = []
    for segment, perf, score in build_items(manifest, raw):
        if score is None:
            score = xml.get(parse_segment(segment).passage)
        rel = "" if score is None else Path(score).relative_to(raw).as_posix()
        items.append(Item(segment, str(perf), None if score is None else str(score), rel))
    return items


def maestro_items(manifest: pd.DataFrame, raw: Path) -> list[Item]:
    """ASAP/MAESTRO performances with the ``midi_score.mid`` of their folder (none if absent)."""
    ok = manifest[manifest["status"] == "ok"]
    scores = set(ok.loc[ok["role"] == "score", "file"])
    items = []
    for file in sorted(ok.loc[ok["role"] == "performance", "file"]):
        score = (Path(file).parent / "midi_score.mid").as_posix()
        name = Path(file).with_suffix("").as_posix()
        if score in scores:
            items.append(Item(name, str(raw / file), str(raw / score), score))
        else:
            items.append(Item(name, str(raw / file)))
    return items


def source_items(source: str, manifest: pd.DataFrame, raw: Path) -> list[Item]:
    """The items of ``percepiano`` or ``maestro``."""
    if source == "percepiano":
        return percepiano_items(manifest, raw)
    if source == "maestro":
        return maestro_items(manifest, raw)
    raise ValueError(f"unknown align source {source!r} (have: percepiano, maestro)")


def limit_items(items: list[Item], score_notes: dict[str, int], max_score_notes: int | None = None,
                max_items: int | None = None) -> list[Item]:
    """Mark items ``skipped`` to bound CPU time (None: no limit).

    The matcher's cost grows with score notes x performance notes (benchmarks/align.md), so an
    item whose score has more than ``max_score_notes`` notes (``score_notes``: manifest counts
    by ``score_file``) is skipped; of the rest, ``max_items`` evenly spaced over the sorted list
    are kept. Items without a score are never skipped (they cost nothing).
    """
    out = []
    for it in items:
        n = score_notes.get(it.score_file, 0)
        if it.score is not None and max_score_notes is not None and n > max_score_notes:
            it = replace(it, skip=f"score has {n} notes > max_score_notes {max_score_notes}")
        out.append(it)
    eligible = [i for i, it in enumerate(out) if it.skip is None and it.score is not None]
    if max_items is not None and len(eligible) > max_items:
        keep = {eligible[int(j)] for j in np.linspace(0, len(eligible) - 1, max_items).round()} \
            if max_items > 0 else set()
        out = [replace(it, skip=f"not among max_items {max_items}")
               if i in eligible and i not in keep else it for i, it in enumerate(out)]
    return out


# --- one item -------------------------------------------------------------------------------

# Per-process cache: most PercePiano scores serve 9-13 segments. Value: ScoreInfo or the error.
_SCORES: dict[str, ScoreInfo | str] = {}


def _score(path: str) -> ScoreInfo | str:
    if path not in _SCORES:
        try:
            _SCORES[path] = load_score(path)
        except ScoreError as exc:
            _SCORES[path] = str(exc)
    return _SCORES[path]


def _row(item: Item, status: str, result=None) -> dict:
    row = dict.fromkeys(ALIGNMENT_COLUMNS, math.nan)
    row.update(segment=item.name, score_file=item.score_file, matcher="", status=status)
    if result is not None:
        row.update(matcher=result.matcher, n_matched=result.n_matched,
                   n_inserted=result.n_inserted, n_deleted=result.n_deleted,
                   match_rate=round(result.match_rate, 6), seconds=round(result.seconds, 4))
    return row


def align_item(item: Item, config: AlignConfig):
    """(notes frame or None, alignments row, segment features row or None, messages)."""
    if item.skip is not None:
        return None, _row(item, "skipped"), None, []
    try:
        perf = read_midi(item.performance)
        if len(perf.notes) == 0:
            raise MidiError(f"{item.performance}: no notes")
    except MidiError as exc:
        return None, _row(item, "unreadable"), None, [f"{item.name}: {exc}"]
    score = _score(item.score) if item.score is not None else None
    messages = []
    if isinstance(score, str):
        messages.append(f"{item.name}: {score}")
        score = None
    row, index, n_score = _row(item, "no_score"), None, 0
    if score is not None:
        result = align(score.notes, performance_note_array(perf.notes), config.matchers,
                       config.min_match_rate, config.min_usable_rate)
        messages += [f"{item.name}: {e}" for e in result.errors]
        row, index, n_score = _row(item, result.status, result), result.score_index, \
            len(score.notes)
    notes = note_deviations(perf.notes, perf.controls, score, index, config.deviations)
    feats = segment_features(notes, row["n_inserted"], row["n_deleted"], n_score, row["status"])
    notes.insert(0, "segment", item.name)
    return notes, row, {"segment": item.name, **feats}, messages


def _reset_cache() -> None:
    _SCORES.clear()


def _align_one(item: Item, config: AlignConfig):
    """``align_item``, with any unexpected error reported as ``failed`` instead of raised."""
    try:
        return align_item(item, config)
    except Exception as exc:  # one bad item must never stop the batch; it is reported
        return None, _row(item, "failed"), None, [f"{item.name}: {type(exc).__name__}: {exc}"]


def _align_chunk(chunk: list[Item], config: AlignConfig, cache_dir: str | None = None) -> list:
    cache = ResultCache(cache_dir, config)
    results = []
    # partitura warns per file about things handled here (e.g. quantisation, missing key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item in chunk:
            result = cache.get(item) if item.skip is None else None
            if result is None:
                result = _align_one(item, config)
                if item.skip is None:
                    cache.put(item, result)
            results.append(result)
    return results


# --- many items -----------------------------------------------------------------------------

@dataclass
class AlignOutput:
    alignments: pd.DataFrame  # ALIGNMENT_COLUMNS, one row per item, sorted by segment
    notes: pd.DataFrame  # segment + NOTE_COLUMNS, sorted by segment, onset_sec, pitch
    segment_features: pd.DataFrame  # segment + SEGMENT_FEATURES
    messages: list[str]  # sorted problems (unreadable files, matcher errors, unusable scores)
    seconds: float = 0.0


def align_items(items: list[Item], config: AlignConfig = AlignConfig(), n_jobs: int = 1,
                chunksize: int | None = None, progress: bool = True,
                cache_dir: str | Path | None = None, fanout: Fanout = LOCAL) -> AlignOutput:
    """Align every item, ``n_jobs`` worker processes (<= 0: all cores; 1: in this process), or
    on the Dask cluster of ``fanout``. With ``cache_dir``, each item's result is kept there as
    it finishes and reused by a later call with the same inputs and code
    (``pianoeval.align.resume``): a killed run resumes."""
    cache_dir = None if cache_dir is None else str(cache_dir)
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        raise ValueError("align_items: duplicate item names")
    # By score, so one worker sees all performances of a score and parses it once.
    items = sorted(items, key=lambda it: (it.score or "", it.name))
    workers = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    if chunksize is None:
        chunksize = min(32, max(1, math.ceil(len(items) / (workers * 8))))
    chunks = [items[i:i + chunksize] for i in range(0, len(items), chunksize)]
    workers = max(1, min(workers, len(chunks)))
    results = []
    start = time.perf_counter()
    _reset_cache()  # a forked worker must not inherit scores parsed by an earlier call
    align_chunk = partial(_align_chunk, config=config, cache_dir=cache_dir)
    with tqdm(total=len(items), desc="align", unit="item", disable=not progress) as bar:
        for chunk, result in zip(chunks, fan_out(align_chunk, chunks, workers, fanout,
                                                 initializer=_reset_cache)):
            results += result
            bar.update(len(chunk))
    _reset_cache()
    seconds = time.perf_counter() - start
    notes = [r[0] for r in results if r[0] is not None]
    alignments = pd.DataFrame([r[1] for r in results], columns=list(ALIGNMENT_COLUMNS))
    for c in ("n_matched", "n_inserted", "n_deleted"):
        alignments[c] = alignments[c].astype("Int64")
    notes = (pd.concat(notes, ignore_index=True) if notes
             else pd.DataFrame(columns=["segment", *NOTE_COLUMNS]))
    feats = pd.DataFrame([r[2] for r in results if r[2] is not None],
                         columns=["segment", *SEGMENT_FEATURES])
    return AlignOutput(
        alignments=alignments.sort_values("segment", ignore_index=True),
        notes=notes.sort_values(["segment", "onset_sec", "pitch"], kind="stable",
                                ignore_index=True),
        segment_features=feats.sort_values("segment", ignore_index=True),
        messages=sorted(m for r in results for m in r[3]),
        seconds=seconds,
    )
