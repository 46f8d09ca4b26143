"""Per-bar feedback from the note deviations, and "passages to practise" calibrated on PercePiano.

A bar's deviation is measured by five statistics, each larger when the bar departs more from
the score or from the performance's own habits:

* ``tempo_dev = |ln tempo_ratio|``: the bar's median local tempo against the performance's;
* ``timing_spread``: the std (ms) of onset deviations from the local tempo line;
* ``dynamics_spread``: the std of ``velocity_rel_local`` (velocity against its neighbours);
* ``articulation_dev = |ln articulation_ratio|``: held notes against their notated value;
* ``error_rate = (extra + missing) / (performed + missing)``: wrong, extra and missing notes.

Calibration: each statistic becomes its percentile among the bars of PercePiano's aligned
performances; a bar's *unusualness* is the percentile, among those bars again, of its largest
statistic percentile. A bar is to be practised when its unusualness is at least
``100 * (1 - fraction)``, so on PercePiano's performers exactly ``fraction`` of the bars would
be flagged. The reference data locate extra notes per bar but not missing ones (the alignment
files keep performed notes only), so its ``error_rate`` counts extra notes alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pianoeval.features.symbolic import onset_groups

STATISTICS = ("tempo_dev", "timing_spread", "dynamics_spread", "articulation_dev", "error_rate")
REASONS = {
    "tempo_dev": "tempo departs from your usual tempo",
    "timing_spread": "uneven timing against the beat",
    "dynamics_spread": "uneven dynamics between neighbouring notes",
    "articulation_dev": "notes held much longer or shorter than written",
    "error_rate": "wrong, extra or missing notes",
}
GRID = np.linspace(0.0, 1.0, 1001)


def _std(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=0)) if len(x) >= 2 else np.nan


def melody_lead(notes: pd.DataFrame, window_sec: float = 0.03) -> pd.Series:
    """Per note of a chord (onsets within ``window_sec``, see ``features.symbolic.onset_groups``)
    of two or more notes, its top note's velocity minus the mean of the others (balance: > 0
    the melody sings over the accompaniment); NaN for the other notes and for single notes."""
    order = np.argsort(notes["onset_sec"].to_numpy(), kind="stable")
    sorted_notes = notes.iloc[order]
    group = pd.Series(onset_groups(sorted_notes["onset_sec"].to_numpy(float), window_sec),
                      index=sorted_notes.index)
    by_group = sorted_notes.groupby(group)
    top = by_group["pitch"].transform("max") == sorted_notes["pitch"]
    size = by_group["pitch"].transform("size")
    velocity = sorted_notes["velocity"].astype(float)
    others = (by_group["velocity"].transform("sum") - velocity) / (size - 1).where(size > 1)
    lead = (velocity - others).where(top & (size > 1))
    return lead.reindex(notes.index)


def bar_table(notes: pd.DataFrame, missing: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (pass, bar) of ``notes`` (NOTE_COLUMNS rows of one performance, with a
    ``pass`` column when the take passes through the score more than once; without it, one
    pass 0): the bar's summary (times, tempo, timing, dynamics, balance, articulation, pedal,
    extra and missing notes) and the ``STATISTICS``. ``missing``: one row (``pass``, ``bar``)
    per score note left unplayed."""
    if "pass" not in notes:
        notes = notes.assign(**{"pass": 0})
    if missing is None:
        missing = pd.DataFrame({"pass": [], "bar": []}, dtype=int)
    keys = [notes["pass"], notes["bar_idx"]]
    by_bar = notes.groupby(keys)
    matched = notes[notes["matched"] == 1].groupby(["pass", "bar_idx"])
    bars = pd.DataFrame({
        "start_sec": by_bar["onset_sec"].min(),
        "end_sec": (notes["onset_sec"] + notes["duration_sec"]).groupby(keys).max(),
        "n_notes": by_bar.size(),
        "tempo_ratio": matched["local_tempo_ratio"].median(),
        "onset_dev_ms_std": matched["onset_dev_ms"].agg(_std),
        "velocity_mean": by_bar["velocity"].mean(),
        "velocity_rel_std": by_bar["velocity_rel_local"].agg(_std),
        "melody_lead": melody_lead(notes).groupby(keys).mean(),
        "articulation_ratio": matched["articulation_ratio"].median(),
        "sustain_ratio": (notes["sustain_cc"] >= 64).groupby(keys).mean(),
        "n_extra": (notes["matched"] == 0).groupby(keys).sum(),
    })
    n_missing = missing.groupby(["pass", "bar"]).size()
    index = bars.index.union(n_missing.index).set_names(["pass", "bar"])
    bars = bars.reindex(index)
    bars["n_notes"] = bars["n_notes"].fillna(0).astype(int)
    bars["n_extra"] = bars["n_extra"].fillna(0).astype(int)
    bars["n_missing"] = n_missing.reindex(index, fill_value=0).astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        bars["tempo_dev"] = np.abs(np.log(bars["tempo_ratio"]))
        bars["timing_spread"] = bars["onset_dev_ms_std"]
        bars["dynamics_spread"] = bars["velocity_rel_std"]
        bars["articulation_dev"] = np.abs(np.log(bars["articulation_ratio"]))
        bars["error_rate"] = ((bars["n_extra"] + bars["n_missing"])
                              / (bars["n_notes"] + bars["n_missing"]))
    return bars.reset_index()


def _percentile(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Share (0..1) of the reference strictly below each value, read off its quantiles on
    ``GRID`` (resolution 1 / 1001): a value tied with a common reference value (an error_rate
    of 0) gets the bottom of the tie, so it is not called unusual. NaN stays NaN."""
    values = np.asarray(values, float)
    below = np.searchsorted(quantiles, np.nan_to_num(values), side="left") / len(GRID)
    return np.where(np.isnan(values), np.nan, below)


@dataclass
class BarReference:
    """Quantiles (on ``GRID``) of each statistic and of the combined score over PercePiano bars."""

    statistics: dict[str, list[float]]
    combined: list[float]
    n_bars: int

    @classmethod
    def fit(cls, bars: pd.DataFrame) -> "BarReference":
        """From the bar tables of the reference performances (concatenated)."""
        stats = {s: np.nanquantile(bars[s].to_numpy(float), GRID).tolist() for s in STATISTICS}
        ref = cls(statistics=stats, combined=[], n_bars=len(bars))
        combined = ref.combined_score(bars)
        ref.combined = np.nanquantile(combined, GRID).tolist()
        return ref

    def statistic_percentiles(self, bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({s: _percentile(bars[s].to_numpy(float),
                                            np.asarray(self.statistics[s]))
                             for s in STATISTICS}, index=bars.index)

    def combined_score(self, bars: pd.DataFrame) -> np.ndarray:
        """Per bar, the largest statistic percentile (NaN when the bar has none)."""
        p = self.statistic_percentiles(bars).to_numpy(float)
        out = np.full(len(bars), np.nan)
        has = ~np.isnan(p).all(axis=1)
        out[has] = np.nanmax(p[has], axis=1)
        return out

    def unusualness(self, bars: pd.DataFrame) -> np.ndarray:
        """Per bar, 0..100: the percentile of its combined score among PercePiano's bars."""
        return 100.0 * _percentile(self.combined_score(bars), np.asarray(self.combined))


def reference_bars(notes: pd.DataFrame) -> pd.DataFrame:
    """The bar tables of every aligned performance in ``notes`` (NOTE_COLUMNS + ``segment``;
    performances without a matched note are left out)."""
    aligned = notes.groupby("segment")["matched"].transform("max") == 1
    tables = [bar_table(group) for _, group in notes[aligned].groupby("segment", sort=True)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=STATISTICS)


def passages_to_practise(bars: pd.DataFrame, reference: BarReference, fraction: float,
                         max_passages: int, reason_percentile: float = 0.95) -> list[dict]:
    """Runs of consecutive flagged bars within a pass (``bars`` needs ``unusualness``), the most
    unusual first, each with the statistics above ``reason_percentile`` among PercePiano's bars
    as reasons."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    flagged = bars[bars["unusualness"] >= 100.0 * (1.0 - fraction)].sort_values(["pass", "bar"])
    if flagged.empty:
        return []
    run = ((flagged["bar"].diff() != 1) | (flagged["pass"].diff() != 0)).cumsum()
    percentiles = reference.statistic_percentiles(flagged)
    out = []
    for _, rows in flagged.groupby(run):
        p = percentiles.loc[rows.index]
        reasons = [REASONS[s] for s in STATISTICS if (p[s] >= reason_percentile).any()]
        out.append({"pass": int(rows["pass"].iloc[0]),
                    "first_bar": int(rows["bar"].min()), "last_bar": int(rows["bar"].max()),
                    "start_sec": float(rows["start_sec"].min()),
                    "end_sec": float(rows["end_sec"].max()),
                    "unusualness": float(rows["unusualness"].max()), "reasons": reasons})
    out.sort(key=lambda p: (-p["unusualness"], p["first_bar"]))
    return out[:max_passages]
