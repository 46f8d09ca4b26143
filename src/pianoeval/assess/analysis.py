"""Judge one performance: features, alignment to a score, the release model's verdict with
intervals, per-bar and per-note feedback. Returns the report of docs/assess_schema.md."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval import __version__
from pianoeval.align.aggregate import segment_features
from pianoeval.align.batch import AlignConfig
from pianoeval.align.deviations import note_deviations
from pianoeval.align.match import performance_note_array
from pianoeval.align.score import XML_SUFFIXES, ScoreError, ScoreInfo, load_score, score_info
from pianoeval.assess.excerpt import locate_excerpt
from pianoeval.assess.bars import BarReference, bar_table, passages_to_practise
from pianoeval.assess.release import ReleaseVariant
from pianoeval.assess.takes import align_passes
from pianoeval.data.midi import CONTROL_DTYPE, NOTE_DTYPE, MidiError, Performance, read_midi
from pianoeval.data.ingest import drum_notes
from pianoeval.features.symbolic import performance_features, score_relative_features

MIDI_SUFFIXES = (".mid", ".midi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
PARTITURA_SCORES = (".mei", ".krn", ".kern")  # MIDI and MusicXML go through align.score
EXCERPT_RATIO = 0.8  # fewer performed than score notes than this: look for the excerpt played
SCORE_SUFFIXES = MIDI_SUFFIXES + XML_SUFFIXES + PARTITURA_SCORES
SCORE_WOULD_ADD = [
    "the score-relative model (tempo, dynamics and note counts against the notation)",
    "note-by-note timing, dynamics and articulation against the score",
    "wrong, extra and missing notes",
    "passages to practise, compared with PercePiano's performers",
]


class AssessError(ValueError):
    """Input that cannot be assessed; the message names the file and the problem."""


@dataclass(frozen=True)
class Release:
    """The release folder: both model variants, the bar reference and the assess settings."""

    variants: dict[str, ReleaseVariant]
    bars: BarReference
    settings: dict
    folder: Path

    @classmethod
    def load(cls, folder: str | Path) -> "Release":
        folder = Path(folder)
        if not (folder / "settings.json").is_file():
            raise AssessError(f"{folder}: no release model here (settings.json missing); "
                              "run `dvc repro release` or use the folder from git")
        settings = json.loads((folder / "settings.json").read_text())
        variants = {v: ReleaseVariant.load(folder / f"{v}.json") for v in settings["variants"]}
        return cls(variants, BarReference(**json.loads((folder / "bars.json").read_text())),
                   settings, folder)

    @property
    def align_config(self) -> AlignConfig:
        return AlignConfig.from_params(self.settings["align"])


def read_performance(path: str | Path, transcription_mode: str = "accurate"
                     ) -> tuple[Performance, str, dict | None]:
    """(notes, "midi" | "audio", transcription info) of a MIDI or audio file."""
    path = Path(path)
    if not path.is_file():
        raise AssessError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        try:
            perf = read_midi(path)
        except MidiError as exc:
            raise AssessError(str(exc)) from exc
        if len(perf.notes) and drum_notes(path) == len(perf.notes):
            raise AssessError(f"{path}: only drum notes (MIDI channel 10), no piano")
        kind, info = "midi", None
    elif suffix in AUDIO_SUFFIXES:
        from pianoeval.assess.transcribe import AudioError, transcribe
        try:
            perf, info = transcribe(path, transcription_mode)
        except AudioError as exc:
            raise AssessError(str(exc)) from exc
        kind = "audio"
    else:
        raise AssessError(f"{path}: neither MIDI ({', '.join(MIDI_SUFFIXES)}) nor audio "
                          f"({', '.join(AUDIO_SUFFIXES)})")
    if len(perf.notes) == 0:
        raise AssessError(f"{path}: no notes" + (" were transcribed" if kind == "audio" else ""))
    return perf, kind, info


def _partitura_part(path: Path):
    import partitura as pt
    try:
        parts = list(pt.load_score(str(path)).parts)
    except Exception as exc:  # partitura raises many types on broken files
        raise ScoreError(f"{path}: cannot load score ({type(exc).__name__}: {exc})") from exc
    if not parts:
        raise ScoreError(f"{path}: no parts")
    return parts[0] if len(parts) == 1 else pt.score.merge_parts(parts)


def read_score(path: str | Path) -> tuple[ScoreInfo, Performance]:
    """The score for alignment, and the score as notes in seconds for the score features (a
    MIDI score as written; another format rendered by partitura at its first tempo marking,
    or 100 quarter notes a minute without one)."""
    import partitura as pt

    path = Path(path)
    if not path.is_file():
        raise AssessError(f"{path}: no such file")
    if path.suffix.lower() not in SCORE_SUFFIXES:
        raise AssessError(f"{path}: not a score format ({', '.join(SCORE_SUFFIXES)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partitura warns about what it repairs
            if path.suffix.lower() in MIDI_SUFFIXES:
                return load_score(path), read_midi(path)
            if path.suffix.lower() in PARTITURA_SCORES:
                part = _partitura_part(path)
                info = score_info(part, False, str(path))
            else:
                info = load_score(path)
                part = _partitura_part(path)
            tempi = list(part.iter_all(pt.score.Tempo))
            bpm = tempi[0].bpm if tempi else 100.0
            rendered = pt.utils.music.performance_from_part(part, bpm=bpm).note_array()
    except (ScoreError, MidiError) as exc:
        raise AssessError(str(exc)) from exc
    notes = np.zeros(len(rendered), NOTE_DTYPE)
    for name in ("onset_sec", "duration_sec", "pitch", "velocity"):
        notes[name] = rendered[name]
    notes = notes[np.lexsort((notes["pitch"], notes["onset_sec"]))]
    return info, Performance(notes=notes, controls=np.zeros(0, CONTROL_DTYPE))


def _clean(value):
    """JSON-safe: NaN and inf become None, numpy scalars plain Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# (group, low end, high end) of each scale, as PercePiano's listeners saw it
SCALE_ENDS = {
    "timing_stable_unstable": ("timing", "stable", "unstable"),
    "articulation_long_short": ("articulation", "long", "short"),
    "articulation_soft_hard": ("articulation", "soft", "hard"),
    "pedal_sparse_saturated": ("pedal", "sparse", "saturated"),
    "pedal_clean_blurred": ("pedal", "clean", "blurred"),
    "timbre_even_colorful": ("timbre", "even", "colorful"),
    "timbre_shallow_rich": ("timbre", "shallow", "rich"),
    "timbre_bright_dark": ("timbre", "bright", "dark"),
    "timbre_soft_loud": ("timbre", "soft", "loud"),
    "dynamics_mellow_raw": ("dynamics", "mellow", "raw"),
    "dynamics_little_large_range": ("dynamics", "little range", "large range"),
    "music_making_fast_slow_paced": ("music making", "fast paced", "slow paced"),
    "music_making_flat_spacious": ("music making", "flat", "spacious"),
    "music_making_disproportioned_balanced": ("music making", "disproportioned", "balanced"),
    "music_making_pure_dramatic": ("music making", "pure", "dramatic"),
    "mood_optimistic_dark": ("mood", "optimistic", "dark"),
    "mood_low_high_energy": ("mood", "low energy", "high energy"),
    "mood_honest_imaginative": ("mood", "honest", "imaginative"),
    "interpretation_unsatisfactory_convincing": ("interpretation", "unsatisfactory",
                                                 "convincing"),
}


def _dimension_rows(predictions: list[dict]) -> list[dict]:
    return [{**p, **dict(zip(("group", "low", "high"), SCALE_ENDS[p["name"]]))}
            for p in predictions]


def _score_span(score: ScoreInfo, perf: Performance, window: float) -> np.ndarray:
    """Mask of the score notes the performance plays: all of them, or, when the performance
    holds clearly fewer notes than the score (``EXCERPT_RATIO``), the whole bars of the span
    ``locate_excerpt`` finds."""
    everything = np.ones(len(score.notes), bool)
    if len(perf.notes) >= EXCERPT_RATIO * len(score.notes):
        return everything
    first, last = locate_excerpt(score.notes["onset_beat"], score.notes["pitch"],
                                 perf.notes["onset_sec"], perf.notes["pitch"], window)
    bars = score.bar_idx(score.notes["onset_beat"])
    first_bar, last_bar = score.bar_idx(np.array([first, last]))
    return (bars >= first_bar) & (bars <= last_bar)


def crop_score_performance(score_perf: Performance, score: ScoreInfo, span: np.ndarray
                           ) -> Performance:
    """The notes of ``score_perf`` (the score in seconds) inside the beats of the ``span`` mask
    over ``score.notes``. Beats map to seconds through the distinct onsets, which a score
    MIDI and its partitura reading share; when their counts differ (partitura merged close
    onsets) through the affine map of first and last onsets."""
    if span.all():
        return score_perf
    beats = np.unique(score.notes["onset_beat"])
    seconds = np.unique(np.round(score_perf.notes["onset_sec"], 4))
    first, last = score.notes["onset_beat"][span].min(), score.notes["onset_beat"][span].max()
    if len(beats) == len(seconds):
        lo, hi = np.interp([first, last], beats, seconds)
    else:
        scale = (seconds[-1] - seconds[0]) / max(beats[-1] - beats[0], 1e-9)
        lo, hi = seconds[0] + scale * (np.array([first, last]) - beats[0])
    onset = score_perf.notes["onset_sec"]
    keep = (onset >= lo - 1e-3) & (onset <= hi + 1e-3)
    return Performance(notes=score_perf.notes[keep], controls=score_perf.controls)


@dataclass
class ScoreMatch:
    """A performance aligned with its score, pass by pass: the note rows (with ``pass``), the
    score notes each pass left unplayed (``pass``, ``bar``, ``pitch``, ``score_onset_beat``),
    the score features of the most complete pass, and the report's alignment summary."""

    notes: pd.DataFrame
    missing: pd.DataFrame
    features: dict[str, float]
    summary: dict

    @property
    def reliable(self) -> bool:
        return self.summary["reliable"]


def _pass_rows(take, n: int) -> np.ndarray:
    """Per performed note its pass; a note between passes joins the pass before it (the first
    pass for notes before any), so every note is drawn somewhere."""
    starts = np.array([p["start"] for p in take.passes], int)
    if len(starts) == 0:
        return np.zeros(n, int)
    return np.maximum(np.searchsorted(starts, np.arange(n), side="right") - 1, 0)


def match_score(perf: Performance, score_path: str | Path, config: AlignConfig, window: float,
                min_note_f: float) -> ScoreMatch:
    """Align ``perf`` with the score, or the excerpt of it the performance plays
    (``_score_span``), pass by pass (``takes.align_passes``: restarts, repeats, skips).
    Reliable when the alignment did not fail and the note F-measure
    ``2 x matched / (performed + score notes of the bars each pass covers)`` reaches
    ``min_note_f``. The model's score features come from the most complete pass, the one
    pass a PercePiano performance has."""
    score, score_perf = read_score(score_path)
    span = _score_span(score, perf, window)
    in_span = np.flatnonzero(span)
    take = align_passes(replace(score, notes=score.notes[span]),
                        performance_note_array(perf.notes), config.matchers,
                        config.min_match_rate, config.min_usable_rate)
    index = np.where(take.score_index >= 0, in_span[np.maximum(take.score_index, 0)], -1)
    passes = _pass_rows(take, len(perf.notes))
    score_bars = score.bar_idx(score.notes["onset_beat"])
    frames, missing, n_score = [], [], 0
    for k in np.unique(passes):
        rows = passes == k
        frame = note_deviations(perf.notes[rows], perf.controls, score, index[rows],
                                config.deviations)
        frames.append(frame.assign(**{"pass": int(k)}))
        info = take.passes[k] if take.passes else {"first_bar": int(score_bars[span].min()),
                                                   "last_bar": int(score_bars[span].max())}
        covered = span & (score_bars >= info["first_bar"]) & (score_bars <= info["last_bar"])
        unplayed = covered.copy()
        unplayed[index[rows][index[rows] >= 0]] = False
        missing.append(pd.DataFrame({"pass": int(k), "bar": score_bars[unplayed],
                                     "pitch": score.notes["pitch"][unplayed],
                                     "score_onset_beat": score.notes["onset_beat"][unplayed]}))
        n_score += int(covered.sum())
    notes, missing = pd.concat(frames, ignore_index=True), pd.concat(missing, ignore_index=True)
    n_matched = int((index >= 0).sum())
    note_f = 2 * n_matched / (len(perf.notes) + n_score)
    best = int(np.argmax([p["n_matched"] for p in take.passes])) if take.passes else 0
    in_best = (notes["pass"] == best).to_numpy()
    best_info = take.passes[best] if take.passes else None
    best_span = span if best_info is None else span & (score_bars >= best_info["first_bar"]) & (
        score_bars <= best_info["last_bar"])
    best_notes = notes[in_best]
    features = score_relative_features(
        Performance(perf.notes[in_best], perf.controls),
        crop_score_performance(score_perf, score, best_span), chord_window_sec=window)
    features.update(segment_features(
        best_notes, int((best_notes["matched"] == 0).sum()),
        int((missing["pass"] == best).sum()), int(best_span.sum()),
        "failed" if best_info is None else best_info["status"]))
    summary = {"status": take.status, "n_passes": take.n_passes,
               "match_rate": take.match_rate, "coverage": take.coverage, "note_f": note_f,
               "n_matched": n_matched, "n_extra": len(perf.notes) - n_matched,
               "n_missing": len(missing),
               "reliable": take.status != "failed" and note_f >= min_note_f,
               "score_bars": [int(score_bars[span].min()), int(score_bars[span].max())],
               "unreliable_bars": [int(b) for b in take.unreliable_bars],
               "passes": [{k: p[k] for k in ("first_bar", "last_bar", "match_rate", "status")}
                          | {"start_sec": float(perf.notes["onset_sec"][p["start"]])}
                          for p in take.passes]}
    return ScoreMatch(notes, missing, features, summary)


def _bar_feedback(notes: pd.DataFrame, match: ScoreMatch | None, release: Release):
    """(bar table, passages to practise); without a score nothing is extra or missing and the
    PercePiano reference does not apply."""
    if match is None:
        bars = bar_table(notes)
        bars["unusualness"], bars["practise"] = np.nan, False
        bars[["n_extra", "n_missing"]] = None
        return bars, []
    fraction = float(release.settings["practise_fraction"])
    bars = bar_table(notes, match.missing)
    bars["unusualness"] = release.bars.unusualness(bars)
    bars["practise"] = bars["unusualness"] >= 100.0 * (1.0 - fraction)
    return bars, passages_to_practise(bars, release.bars, fraction,
                                      int(release.settings["max_passages"]))


def assess(performance: str | Path, release: Release, score: str | Path | None = None,
           transcription_mode: str = "accurate") -> dict:
    """The report (docs/assess_schema.md) of one performance, with or without its score."""
    settings = release.settings
    perf, kind, transcription = read_performance(performance, transcription_mode)
    window = float(settings["chord_window_sec"])
    features = performance_features(perf, chord_window_sec=window)
    notes = note_deviations(perf.notes, perf.controls, None, None,
                            release.align_config.deviations)
    warnings_out: list[str] = []
    match = None
    if score is not None:
        match = match_score(perf, score, release.align_config, window,
                            float(settings["score_min_note_f"]))
        if match.reliable:
            notes = match.notes
            features.update(match.features)
        else:
            warnings_out.append(
                f"the score {Path(score).name} does not match the performance (note F "
                f"{match.summary['note_f']:.2f}, below {settings['score_min_note_f']}): "
                "judged without the score")
    used = match if match is not None and match.reliable else None
    variant = "performance_only" if used is None else "with_score"
    model = release.variants[variant]
    outlying = model.outlying_features(features, float(settings["outlier_z"]))
    if outlying:
        warnings_out.append(
            f"{len(outlying)} of {len(model.model.features)} features lie more than "
            f"{settings['outlier_z']} standard deviations outside PercePiano's performances "
            f"({', '.join(outlying)}): the model extrapolates, read its scores with care")
    bars, passages = _bar_feedback(notes, used, release)
    report = {
        "schema_version": 1, "pianoeval_version": __version__,
        "input": {"performance": str(performance), "kind": kind,
                  "score": None if score is None else str(score),
                  "transcription": transcription},
        "variant": variant,
        "model": {"name": settings["variants"][variant], "card": "models/release/MODEL_CARD.md",
                  "coverage": model.coverage},
        "warnings": warnings_out,
        "score_would_add": SCORE_WOULD_ADD if used is None else [],
        "summary": {"duration_sec": perf.duration_sec, "n_notes": len(perf.notes),
                    "n_bars": len(bars)},
        "alignment": None if match is None else match.summary,
        "dimensions": _dimension_rows(model.predict(features)),
        "bars": bars[BAR_FIELDS].to_dict("records"),
        "notes": _note_rows(notes, used is not None),
        "missing_notes": [] if used is None else used.missing.to_dict("records"),
        "passages_to_practise": passages,
    }
    return _clean(report)


BAR_FIELDS = ["pass", "bar", "start_sec", "end_sec", "n_notes", "tempo_ratio", "onset_dev_ms_std",
              "velocity_mean", "velocity_rel_std", "melody_lead", "articulation_ratio",
              "sustain_ratio", "n_extra", "n_missing", "unusualness", "practise"]
NOTE_FIELDS = ["onset_sec", "duration_sec", "pitch", "velocity", "pass", "bar", "matched",
               "onset_dev_ms", "velocity_rel_local", "articulation_ratio", "sustain_cc"]


def _note_rows(notes: pd.DataFrame, aligned: bool) -> list[dict]:
    frame = notes.rename(columns={"bar_idx": "bar"}).assign(
        **({} if "pass" in notes else {"pass": 0}))[NOTE_FIELDS].astype(object)
    frame["matched"] = notes["matched"].astype(bool) if aligned else None
    return frame.to_dict("records")
