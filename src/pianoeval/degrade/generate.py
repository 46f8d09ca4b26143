"""Generate the tiered samples of clean segments and describe each by features.

Clean segments are the PercePiano segments and windows of the ASAP/MAESTRO performances. Each
sample's score alignment is *composed*, not re-matched: the degrader tracks every note's origin
in the clean segment, whose alignment to the score the ``align`` stage computed, so a kept note
keeps its score note, a substituted note becomes an insertion (wrong pitch) and a deleted
note's score note a deletion. Re-running the matcher on every sample would cost hours of CPU
(~0.3 us x score x performance notes) to recover a correspondence we already know exactly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib import recfunctions as rfn
from tqdm import tqdm

from pianoeval.align.aggregate import segment_features
from pianoeval.align.deviations import DeviationConfig, note_deviations
from pianoeval.align.score import ScoreError, load_score
from pianoeval.data.edit import window, write_midi
from pianoeval.data.midi import NOTE_DTYPE, MidiError, Performance, read_midi
from pianoeval.degrade.tiers import (MIDI_FAMILIES, N_TIERS, Sample, degrade_midi, draw_variant,
                                     stable_seed)
from pianoeval.fanout import LOCAL, Fanout, fan_out
from pianoeval.features.symbolic import performance_features

log = logging.getLogger(__name__)
ALIGNED = ("ok", "low_match")
ONSET_TOLERANCE_BEATS = 1e-3  # notes.csv keeps 7 significant digits


@dataclass(frozen=True)
class CleanItem:
    """A clean segment: a whole PercePiano segment or a window of a longer performance."""

    name: str  # sample id stem: the segment, or "<performance>@<start ms>-<end ms>"
    source: str  # percepiano | maestro
    work: str  # held-out unit of the tier scorer
    performance: str  # MIDI path
    score: str | None = None
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class CleanAlignment:
    """The align stage's result for a clean performance: status and, per performed note (in
    ``read_midi`` order), whether it matched and its score onset (beats)."""

    status: str
    matched: np.ndarray  # bool
    score_onset_beat: np.ndarray  # float, NaN when unmatched


def score_index_from_alignment(notes: np.ndarray, alignment: CleanAlignment, score_notes: np.ndarray
                               ) -> np.ndarray:
    """Index of each performed note's score note (same pitch, onset within 1e-3 beats), -1 when
    unmatched. Raises ValueError when the rows do not fit the notes."""
    if len(alignment.matched) != len(notes):
        raise ValueError(f"alignment has {len(alignment.matched)} notes, performance {len(notes)}")
    index = np.full(len(notes), -1, np.int64)
    for i in np.flatnonzero(alignment.matched):
        same = np.flatnonzero((score_notes["pitch"] == notes["pitch"][i]) & (np.abs(
            score_notes["onset_beat"] - alignment.score_onset_beat[i]) < ONSET_TOLERANCE_BEATS))
        if len(same):
            index[i] = same[0]
    return index


def with_origin(perf: Performance) -> Performance:
    """Notes with two tracking fields: ``origin`` (index in the clean notes) and ``wrong``."""
    notes = rfn.append_fields(perf.notes, ["origin", "wrong"],
                              [np.arange(len(perf.notes)), np.zeros(len(perf.notes), bool)],
                              usemask=False)
    return Performance(notes, perf.controls)


def plain(perf: Performance) -> Performance:
    notes = np.empty(len(perf.notes), NOTE_DTYPE)
    for name in NOTE_DTYPE.names:
        notes[name] = perf.notes[name]
    return Performance(notes, perf.controls)


def velocity_entropy_bits(velocity: np.ndarray, bin_width: int = 8) -> float:
    """Shannon entropy ``-sum p log2 p`` of the velocity histogram (bins of ``bin_width``
    MIDI units): low for flattened dynamics."""
    if len(velocity) == 0:
        return float("nan")
    counts = np.bincount(np.asarray(velocity, int) // bin_width)
    p = counts[counts > 0] / len(velocity)
    return float(-(p * np.log2(p)).sum())


def same_key_overlap_rate(notes: np.ndarray, tolerance_sec: float = 0.001) -> float:
    """Share of notes struck again before their previous note on the same key ended
    (``onset_next < offset_prev - tolerance``). A piano key must rise before it is re-struck, so
    recorded performances have ~0; lengthened or jittered notes do not."""
    if len(notes) < 2:
        return float("nan") if len(notes) == 0 else 0.0
    order = np.lexsort((notes["onset_sec"], notes["pitch"]))
    pitch, onset = notes["pitch"][order], notes["onset_sec"][order]
    offset = onset + notes["duration_sec"][order]
    same = pitch[1:] == pitch[:-1]
    return float(np.sum(same & (onset[1:] < offset[:-1] - tolerance_sec)) / len(notes))


def describe(perf: Performance, score, clean_index: np.ndarray | None, n_score: int,
             deviations: DeviationConfig) -> dict[str, float]:
    """Symbolic features, the velocity entropy, the same-key overlap rate, and the ``align_*``
    summaries of the composed alignment."""
    feats = performance_features(plain(perf))
    feats["velocity_entropy_bits"] = velocity_entropy_bits(perf.notes["velocity"])
    feats["same_key_overlap_rate"] = same_key_overlap_rate(perf.notes)
    if score is None or clean_index is None:
        notes = note_deviations(perf.notes, perf.controls, None, None, deviations)
        return feats | segment_features(notes, 0, 0, 0, "no_score")
    origin = perf.notes["origin"]
    index = np.where(origin >= 0, clean_index[np.clip(origin, 0, None)], -1)
    index[perf.notes["wrong"]] = -1
    notes = note_deviations(perf.notes, perf.controls, score, index, deviations)
    n_matched = int((index >= 0).sum())
    return feats | segment_features(notes, int((index < 0).sum()), max(n_score - n_matched, 0),
                                    n_score, "ok")


@dataclass(frozen=True)
class GenerateConfig:
    families: dict  # family -> level lists (params degrade.families)
    seed: int = 0
    deviations: DeviationConfig = DeviationConfig()
    midi_dir: str | None = None  # write every sample here as <sample>.mid (None: do not)


_SCORES: dict = {}


def _load_score(path: str | None):
    if path is None:
        return None
    if path not in _SCORES:
        try:
            _SCORES[path] = load_score(path)
        except ScoreError as exc:
            log.warning("%s", exc)
            _SCORES[path] = None
    return _SCORES[path]


def clean_performance(item: CleanItem, alignment: CleanAlignment | None
                      ) -> tuple[Performance, CleanAlignment | None]:
    """The item's notes (its window, shifted to 0) and its alignment rows (None when the rows
    do not fit the performance)."""
    perf = read_midi(item.performance)
    if alignment is not None and len(alignment.matched) != len(perf.notes):
        log.warning("%s: alignment rows (%d) do not fit the performance (%d notes); features "
                    "without the score", item.name, len(alignment.matched), len(perf.notes))
        alignment = None
    if item.window is None:
        return perf, alignment
    perf, kept = window(perf, *item.window)
    if alignment is not None:
        alignment = CleanAlignment(alignment.status, alignment.matched[kept],
                                   alignment.score_onset_beat[kept])
    return perf, alignment


def generate_item(item: CleanItem, alignment: CleanAlignment | None, config: GenerateConfig
                  ) -> list[tuple[Sample, dict]]:
    """The clean sample and every family x tier 1..3 of one clean item, with features."""
    perf, alignment = clean_performance(item, alignment)
    if len(perf.notes) == 0:
        raise MidiError(f"{item.performance}: no notes in {item.window or 'the file'}")
    score = _load_score(item.score) if alignment is not None and alignment.status in ALIGNED else None
    clean_index, n_score = None, 0
    if score is not None:
        try:
            clean_index = score_index_from_alignment(perf.notes, alignment, score.notes)
        except ValueError as exc:
            log.warning("%s: %s", item.name, exc)
            score = None
    if score is not None:
        if item.window is None:
            n_score = len(score.notes)
        else:  # the score notes within the beats the window's matched notes span
            beats = alignment.score_onset_beat[alignment.matched]
            lo, hi = (beats.min(), beats.max()) if len(beats) else (0.0, -1.0)
            n_score = int(((score.notes["onset_beat"] >= lo - ONSET_TOLERANCE_BEATS)
                           & (score.notes["onset_beat"] <= hi + ONSET_TOLERANCE_BEATS)).sum())
    tracked = with_origin(perf)
    out = []

    def emit(sample: Sample, degraded: Performance):
        if config.midi_dir is not None:
            write_midi(plain(degraded), Path(config.midi_dir) / f"{sample.sample}.mid")
        out.append((sample, describe(degraded, score, clean_index, n_score, config.deviations)))

    emit(Sample(f"{item.name}#clean", item.name, "clean", "", 0, {}), tracked)
    for family in MIDI_FAMILIES:
        if family not in config.families:
            continue
        variant = draw_variant(family, perf, np.random.default_rng(
            stable_seed(config.seed, item.name, family)))
        for tier in range(1, N_TIERS):
            rng = np.random.default_rng(stable_seed(config.seed, item.name, family, tier))
            degraded, meta = degrade_midi(tracked, family, variant, tier, config.families[family], rng)
            emit(Sample(f"{item.name}#{family}{tier}", item.name, family, variant, tier, meta),
                 degraded)
    return out


def _generate_chunk(chunk, config):
    results, failures = [], []
    for item, alignment in chunk:
        try:
            results.extend(generate_item(item, alignment, config))
        except Exception as exc:  # a bad item is counted and reported, never fatal
            failures.append((item.name, f"{type(exc).__name__}: {exc}"))
    return results, failures


def generate(items: list[tuple[CleanItem, CleanAlignment | None]], config: GenerateConfig,
             n_jobs: int = 1, chunk_size: int = 16, fanout: Fanout = LOCAL
             ) -> tuple[list[tuple[Sample, dict]], list]:
    """``generate_item`` over all items, in their order, locally or on the Dask cluster of
    ``fanout`` (items sharing a score stay in one chunk's order, so each worker parses a score
    once). Returns (samples with features, failures)."""
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    results, failures = [], []
    with tqdm(total=len(items), desc="degrade", unit="segment") as bar:
        for chunk, (r, f) in zip(chunks, fan_out(partial(_generate_chunk, config=config), chunks,
                                                 n_jobs, fanout)):
            results += r
            failures += f
            bar.update(len(chunk))
    return results, failures


def samples_frame(results: list[tuple[Sample, dict]], items: dict[str, CleanItem]) -> pd.DataFrame:
    """One row per sample: id, item, source, work, family, variant, tier, each degradation's
    magnitude (``deg_*``), then the features."""
    rows = []
    for s, feats in results:
        item = items[s.item]
        rows.append({"sample": s.sample, "item": s.item, "source": item.source, "work": item.work,
                     "family": s.family, "variant": s.variant, "tier": s.tier,
                     **{f"deg_{k}": v for k, v in s.meta.items()}, **feats})
    frame = pd.DataFrame(rows)
    deg = sorted(c for c in frame.columns if c.startswith("deg_"))
    head = ["sample", "item", "source", "work", "family", "variant", "tier"]
    return frame[head + deg + [c for c in frame.columns if c not in head and c not in deg]]


# --- clean items ----------------------------------------------------------------------------

def read_alignments(align_dir: Path, names: set[str] | None = None) -> dict[str, CleanAlignment]:
    """Per performance in ``align_dir`` (an ``align`` stage output): status and per-note
    (matched, score onset). Missing folder -> {} (features then go without the score)."""
    if not (align_dir / "notes.csv").is_file():
        return {}
    status = pd.read_csv(align_dir / "alignments.csv").set_index("segment")["status"].to_dict()
    out = {}
    for chunk in pd.read_csv(align_dir / "notes.csv", chunksize=1_000_000,
                             usecols=["segment", "matched", "score_onset_beat"]):
        if names is not None:
            chunk = chunk[chunk["segment"].isin(names)]
        for name, rows in chunk.groupby("segment", sort=False):
            prev = out.get(name)
            matched = rows["matched"].to_numpy(bool)
            beats = rows["score_onset_beat"].to_numpy(float)
            if prev is not None:  # a performance split across two chunks
                matched = np.concatenate([prev.matched, matched])
                beats = np.concatenate([prev.score_onset_beat, beats])
            out[name] = CleanAlignment(str(status.get(name, "no_score")), matched, beats)
    return out


def percepiano_clean_items(manifest: pd.DataFrame, raw: Path) -> list[CleanItem]:
    """Every PercePiano segment (its score as the align stage chose it); work = composer+piece."""
    from pianoeval.align.batch import percepiano_items
    from pianoeval.data.segments import parse_segment

    return [CleanItem(i.name, "percepiano", f"percepiano/{parse_segment(i.name).work}",
                      i.performance, i.score) for i in percepiano_items(manifest, raw)]


def maestro_clean_items(manifest: pd.DataFrame, raw: Path, window_sec: float, hop_sec: float,
                        max_performances: int | None, max_windows: int | None) -> list[CleanItem]:
    """Windows of ``max_performances`` ASAP performances spread over the sorted list (the first
    ``max_windows`` of each); work = the ASAP folder of the piece."""
    from pianoeval.align.batch import maestro_items
    from pianoeval.audio.render import plan_windows, spread_pick

    duration = dict(zip(manifest["file"], manifest["duration_sec"]))
    raw_prefix = str(raw) + "/"
    items = []
    for perf in spread_pick(maestro_items(manifest, raw), max_performances):
        file = perf.performance.removeprefix(raw_prefix)
        for start, end in plan_windows(float(duration[file]), window_sec, hop_sec, max_windows):
            items.append(CleanItem(f"{perf.name}@{round(start * 1000)}-{round(end * 1000)}",
                                   "maestro", f"maestro/{Path(perf.name).parent.as_posix()}",
                                   perf.performance, perf.score, (start, end)))
    return items
