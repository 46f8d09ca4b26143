"""Inputs of the audio+MIDI models: one table of PercePiano segments (labels, MIDI features,
audio embeddings per soundfont) and, optionally, the unlabelled degraded samples of issue 5
(tier, MIDI features, audio features where the family is audio, Snorkel tier probabilities,
same-passage tier pairs).

Both modalities are fixed vectors from frozen encoders: MIDI = the symbolic feature table of
the `features` stage (performance + score-alignment features), audio = the pooled embedding of
the `encode_audio` stage. A degraded sample carries the same MIDI features (columns the
degrade stage does not compute, the score_* ones, are NaN and imputed later) and, for the audio
family, the same spectral features under an ``audio_`` prefix.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.segments import parse_segment

N_TIERS = 4


@dataclass
class Aux:
    """Unlabelled degraded samples (rows) and their tier pairs."""

    item: np.ndarray  # (N,) clean segment / window each sample was made from
    tier: np.ndarray  # (N,) 0 clean .. 3 severe
    midi: np.ndarray  # (N, d_midi), NaN where a feature is unknown
    audio: np.ndarray  # (N, d_audio), NaN rows for MIDI-only samples
    weak: np.ndarray  # (N, 4) Snorkel probabilities, NaN rows where the sample has none
    pairs: np.ndarray  # (P, 2) row indices (better, worse)

    def subset(self, keep: np.ndarray) -> "Aux":
        """The rows where ``keep`` is True and the pairs between two kept rows, re-indexed."""
        new_index = np.full(len(keep), -1)
        new_index[keep] = np.arange(int(keep.sum()))
        pairs = new_index[self.pairs]
        return Aux(self.item[keep], self.tier[keep], self.midi[keep], self.audio[keep],
                   self.weak[keep], pairs[(pairs >= 0).all(axis=1)])


@dataclass
class WindowPairs:
    """Unlabelled ASAP/MAESTRO windows in both modalities: extra contrastive pairs."""

    items: np.ndarray  # (m,) '<performance>@<start ms>-<end ms>'
    works: np.ndarray  # (m,) the ASAP folder of the piece (the degrade stage's work)
    midi: np.ndarray  # (m, d_midi), NaN where a feature is unknown
    audio: dict[str, np.ndarray]  # soundfont -> (m, d_audio), NaN rows where not rendered


@dataclass
class FusionData:
    """PercePiano segments, row-aligned."""

    segments: np.ndarray  # (n,)
    passages: np.ndarray  # (n,) same music, different performers
    y: np.ndarray  # (n, 19) labels on the 0..1 scale
    midi: np.ndarray  # (n, d_midi)
    audio: dict[str, np.ndarray]  # soundfont -> (n, d_audio); NaN rows where not rendered
    midi_columns: list[str]
    audio_columns: list[str]
    aux: Aux | None = None
    windows: WindowPairs | None = None


def assemble(labels: pd.DataFrame, features: pd.DataFrame,
             audio: dict[str, pd.DataFrame], audio_columns: list[str]) -> FusionData:
    """Labelled segments with MIDI features (every one must have them) and audio per soundfont.

    ``audio``: soundfont -> table ``segment`` + ``audio_columns`` (``audio.encode.load_pooled``).
    """
    missing = sorted(set(labels["segment"]) - set(features["segment"]))
    if missing:
        raise ValueError(f"{len(missing)} labelled segments have no MIDI features, e.g. {missing[:3]}")
    table = labels[["segment", *DIMENSIONS]].merge(features, on="segment", validate="one_to_one")
    table = table.sort_values("segment", ignore_index=True)
    midi_columns = [c for c in features.columns if c != "segment"]
    views = {}
    for soundfont, emb in audio.items():
        aligned = table[["segment"]].merge(emb, on="segment", how="left", validate="one_to_one")
        views[soundfont] = aligned[audio_columns].to_numpy(float)
    segments = table["segment"].to_numpy()
    return FusionData(segments=segments,
                      passages=np.array([parse_segment(s).passage for s in segments]),
                      y=table[list(DIMENSIONS)].to_numpy(float),
                      midi=table[midi_columns].to_numpy(float), audio=views,
                      midi_columns=midi_columns, audio_columns=audio_columns)


def _excluded(items: pd.Series, exclude_works) -> np.ndarray:
    """Items whose name matches one of the regexes ``exclude_works`` (PercePiano's works)."""
    patterns = [re.compile(p, re.IGNORECASE) for p in exclude_works]
    return items.map(lambda i: any(p.search(i) for p in patterns)).to_numpy(bool)


def load_aux(samples: pd.DataFrame, pairs: pd.DataFrame, weak: pd.DataFrame,
             midi_columns: list[str], audio_columns: list[str],
             exclude_works: list[str] = ()) -> Aux:
    """The degraded samples as an :class:`Aux`.

    ``audio_columns`` are the embedding names (``emb_<name>``); the degrade stage stores the same
    features as ``audio_<name>``. Samples of an ASAP/MAESTRO window whose item matches one of
    ``exclude_works`` (regexes for PercePiano's works) are dropped, so no other performance of
    an evaluated work enters training.
    """
    keep = ~_excluded(samples["item"], exclude_works) | (samples["source"] == "percepiano").to_numpy()
    samples = samples[keep].reset_index(drop=True)
    midi = samples.reindex(columns=midi_columns).to_numpy(float)
    degrade_audio = ["audio_" + c.removeprefix("emb_") for c in audio_columns]
    audio = samples.reindex(columns=degrade_audio).to_numpy(float)
    probs = samples[["sample"]].merge(weak[["sample", "p0", "p1", "p2", "p3"]], on="sample",
                                      how="left", validate="one_to_one")
    row = pd.Series(np.arange(len(samples)), index=samples["sample"])
    known = pairs["better"].isin(row.index) & pairs["worse"].isin(row.index)
    index_pairs = np.stack([row[pairs.loc[known, "better"]].to_numpy(),
                            row[pairs.loc[known, "worse"]].to_numpy()], axis=1) \
        if known.any() else np.zeros((0, 2), int)
    return Aux(item=samples["item"].to_numpy(), tier=samples["tier"].to_numpy(int), midi=midi,
               audio=audio, weak=probs[["p0", "p1", "p2", "p3"]].to_numpy(float),
               pairs=index_pairs.astype(int))


def same_passage_pairs(passages: np.ndarray) -> np.ndarray:
    """(P, 2) index pairs i < j of rows with the same passage."""
    out = []
    for passage in np.unique(passages):
        rows = np.flatnonzero(passages == passage)
        i, j = np.triu_indices(len(rows), k=1)
        out.append(np.stack([rows[i], rows[j]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), int)


class Standardizer:
    """Median imputation, then z-scores clipped to +-``clip``: fitted on training rows only.

    Not sklearn's SimpleImputer + StandardScaler because those drop all-NaN columns (the score_*
    features of a fold's degraded samples), which would shift every later column.
    """

    def __init__(self, clip: float = 5.0):
        self.clip = clip

    def fit(self, X: np.ndarray) -> "Standardizer":
        X = np.asarray(X, float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: median 0
            self.median_ = np.nan_to_num(np.nanmedian(X, axis=0))
        filled = np.where(np.isnan(X), self.median_, X)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.std_ = np.where(std > 1e-9, std, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        filled = np.where(np.isnan(X), self.median_, X)
        return np.clip((filled - self.mean_) / self.std_, -self.clip, self.clip)

    def transform_view(self, view: np.ndarray) -> np.ndarray:
        """``transform`` of an audio view whose absent rows (any NaN) stay all-NaN."""
        z = self.transform(view)
        z[np.isnan(view).any(axis=1)] = np.nan
        return z


def degraded_audio_views(samples: pd.DataFrame, segments: np.ndarray, audio_columns: list[str],
                         tiers: list[int]) -> list[np.ndarray]:
    """Per tier, the audio family's degraded render of each segment as an extra audio view
    (n, d), NaN rows for segments without one: the same music, other acoustics."""
    audio = samples[samples["family"] == "audio"]
    names = ["audio_" + c.removeprefix("emb_") for c in audio_columns]
    views = []
    for tier in tiers:
        rows = audio[audio["tier"] == tier].drop_duplicates("item").set_index("item")
        views.append(rows.reindex(segments)[names].to_numpy(float))
    return views


def load_fusion_data(labels_csv, features_csv, embeddings_root, source: str,
                     soundfonts: list[str]) -> FusionData:
    """Read the labelled segments' MIDI features and their audio embeddings per soundfont."""
    from pianoeval.audio.encode import load_pooled

    tables, columns = {}, None
    for soundfont in soundfonts:
        tables[soundfont], cols = load_pooled(embeddings_root, source, soundfont)
        if columns is not None and cols != columns:
            raise ValueError(f"{embeddings_root}: {soundfont} embeddings have other columns")
        columns = cols
    return assemble(pd.read_csv(labels_csv), pd.read_csv(features_csv), tables, columns)


def load_window_pairs(samples: pd.DataFrame, embeddings_root, soundfonts: list[str],
                      midi_columns: list[str], audio_columns: list[str],
                      exclude_works: list[str] = ()) -> WindowPairs:
    """The clean ASAP/MAESTRO windows of the degrade stage (their MIDI features) that were also
    rendered and encoded (windows of the same performances, ``render.maestro`` = the degrade
    stage's ``sources.maestro`` selection). Windows of a work matching ``exclude_works`` are
    dropped, as in :func:`load_aux`. A window without the first soundfont's audio is dropped."""
    from pianoeval.audio.encode import load_pooled

    clean = samples[(samples["source"] == "maestro") & (samples["family"] == "clean")]
    clean = clean[~_excluded(clean["item"], exclude_works)].drop_duplicates("item")
    tables = {}
    for soundfont in soundfonts:
        table, cols = load_pooled(embeddings_root, "maestro", soundfont, windows=True)
        if cols != audio_columns:
            raise ValueError(f"{embeddings_root}: maestro {soundfont} embeddings have other columns")
        tables[soundfont] = table.drop_duplicates("segment").set_index("segment")
    clean = clean[clean["item"].isin(tables[soundfonts[0]].index)].sort_values("item")
    items = clean["item"].to_numpy()
    return WindowPairs(items=items, works=clean["work"].to_numpy(),
                       midi=clean.reindex(columns=midi_columns).to_numpy(float),
                       audio={sf: t.reindex(items)[audio_columns].to_numpy(float)
                              for sf, t in tables.items()})
