"""Per-note inputs of the sequence models: the notes table -> padded, standardised batches.

The notes table (``data/align/percepiano/notes.csv``) has one row per performed note, sorted by
segment, onset and pitch. A feature name is either a column of the table or one of ``DERIVED``
(computed here from the performance alone), so renaming a column is a params edit.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pianoeval.sequence.model import Batch

IOI_FLOOR_SEC = 0.01  # log(x + floor): chord notes have IOI ~0; 10 ms keeps their log finite


def _log_ioi(notes: pd.DataFrame) -> np.ndarray:
    """log(onset - previous note's onset + 10 ms); NaN for a segment's first note."""
    ioi = notes.groupby("segment", sort=False)["onset_sec"].diff().to_numpy(float)
    return np.log(ioi + IOI_FLOOR_SEC)


def _log_duration(notes: pd.DataFrame) -> np.ndarray:
    return np.log(notes["duration_sec"].to_numpy(float) + IOI_FLOOR_SEC)


DERIVED = {"log_ioi": _log_ioi, "log_duration": _log_duration}
REQUIRED = ("segment", "onset_sec", "beat_idx", "bar_idx")


@dataclass
class NoteData:
    """Every segment's notes, unstandardised. ``features[i]`` is (n_i, len(columns)) float32
    (NaN where undefined); ``beat[i]``/``bar[i]`` number the segment's (bar, beat) pairs and
    bars 0.. in score order."""

    segments: np.ndarray            # (S,) names, sorted
    columns: list[str]
    features: list[np.ndarray]
    beat: list[np.ndarray]
    bar: list[np.ndarray]

    def lengths(self, idx=None) -> np.ndarray:
        idx = range(len(self.segments)) if idx is None else idx
        return np.array([len(self.features[i]) for i in idx])

    def subset_columns(self, columns: list[str]) -> "NoteData":
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise KeyError(f"features {missing} not loaded (have: {self.columns})")
        cols = [self.columns.index(c) for c in columns]
        return NoteData(self.segments, list(columns), [f[:, cols] for f in self.features],
                        self.beat, self.bar)

    def select(self, segments) -> "NoteData":
        """The same data restricted to (and ordered as) ``segments``."""
        pos = {s: i for i, s in enumerate(self.segments)}
        missing = [s for s in segments if s not in pos]
        if missing:
            raise KeyError(f"{len(missing)} segments have no notes, e.g. {missing[:3]}")
        idx = [pos[s] for s in segments]
        return NoteData(np.asarray(segments), self.columns, [self.features[i] for i in idx],
                        [self.beat[i] for i in idx], [self.bar[i] for i in idx])


def load_notes(notes: pd.DataFrame, columns: list[str]) -> NoteData:
    """Group a notes table by segment into per-segment arrays of ``columns``.

    KeyError names a feature that is neither a column nor derived, or a missing required column.
    """
    missing = [c for c in REQUIRED if c not in notes.columns]
    missing += [c for c in columns if c not in notes.columns and c not in DERIVED]
    if missing:
        raise KeyError(f"notes table lacks columns {missing} (derived features: {sorted(DERIVED)})")
    notes = notes.sort_values(["segment", "onset_sec"], kind="stable").reset_index(drop=True)
    values = np.column_stack([DERIVED[c](notes) if c not in notes.columns
                              else notes[c].to_numpy(float) for c in columns]).astype(np.float32)
    segments, starts = np.unique(notes["segment"].to_numpy(), return_index=True)
    ends = np.append(starts[1:], len(notes))
    bar_idx, beat_idx = notes["bar_idx"].to_numpy(np.int64), notes["beat_idx"].to_numpy(np.int64)
    features, beats, bars = [], [], []
    for a, b in zip(starts, ends):
        features.append(values[a:b])
        # number the (bar, beat) pairs and the bars in score order, from 0 within the segment:
        # works whether beat_idx counts within the bar or through the segment
        _, beat = np.unique(np.stack([bar_idx[a:b], beat_idx[a:b]], 1), axis=0, return_inverse=True)
        _, bar = np.unique(bar_idx[a:b], return_inverse=True)
        beats.append(beat.reshape(-1).astype(np.int64))
        bars.append(bar.reshape(-1).astype(np.int64))
    return NoteData(segments, list(columns), features, beats, bars)


@dataclass
class Standardiser:
    """Per-feature z-scores, fitted on training segments only, each segment weighted equally
    (a 400-note segment does not count 8 times as much as a 50-note one). NaN -> 0 (the
    training mean) after scaling; z-scores are clipped to +-clip (the deviation features have
    heavy tails: a mis-matched note can be seconds off)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float

    @classmethod
    def fit(cls, features: list[np.ndarray], clip: float) -> "Standardiser":
        if not features:
            raise ValueError("no training segments to fit the standardiser on")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: NaN, handled below
            seg_mean = np.stack([np.nanmean(f, 0) for f in features])
            mean = np.nanmean(seg_mean, 0)
            seg_var = np.stack([np.nanmean((f - mean) ** 2, 0) for f in features])
            std = np.sqrt(np.nanmean(seg_var, 0))
        mean = np.nan_to_num(mean, nan=0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32), clip)

    def transform(self, f: np.ndarray) -> np.ndarray:
        z = np.clip((f - self.mean) / self.std, -self.clip, self.clip)
        return np.nan_to_num(z, nan=0.0).astype(np.float32)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}


def collate(xs: list[np.ndarray], beats: list[np.ndarray], bars: list[np.ndarray]) -> Batch:
    """Pad a list of segments into one Batch (padding: x 0, mask False, group ids 0)."""
    B, L, F = len(xs), max(len(x) for x in xs), xs[0].shape[1]
    x = torch.zeros(B, L, F)
    mask = torch.zeros(B, L, dtype=torch.bool)
    beat = torch.zeros(B, L, dtype=torch.long)
    bar = torch.zeros(B, L, dtype=torch.long)
    for i, (xi, be, ba) in enumerate(zip(xs, beats, bars)):
        n = len(xi)
        x[i, :n] = torch.from_numpy(xi)
        mask[i, :n] = True
        beat[i, :n] = torch.from_numpy(be)
        bar[i, :n] = torch.from_numpy(ba)
    return Batch(x, mask, beat, bar)
