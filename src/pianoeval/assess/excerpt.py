"""Find where in a score a performance of only part of it lies (a passage practised alone).

The note matchers align a performance end to end with its score; a performance of bars 9-24
against the whole score then fails. Subsequence DTW (Müller 2015, ch. 7.2; librosa's
``dtw(subseq=True)``) over onset groups finds the score span the performance covers: each
onset group (notes within ``window_sec`` in the performance, at one score onset in the score)
is a 12-bin pitch-class vector, the cost is the cosine distance.
"""
from __future__ import annotations

import numpy as np

from pianoeval.features.symbolic import onset_groups


def _chroma(groups: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """12 x n_groups: how many notes of each pitch class start in each group, unit length."""
    out = np.zeros((12, int(groups.max()) + 1))
    np.add.at(out, (pitches % 12, groups), 1.0)
    return out / np.linalg.norm(out, axis=0, keepdims=True)


def locate_excerpt(score_beats: np.ndarray, score_pitches: np.ndarray, perf_onsets: np.ndarray,
                   perf_pitches: np.ndarray, window_sec: float = 0.03) -> tuple[float, float]:
    """(first, last) score onset beat of the span the performance covers.

    ``score_beats``/``score_pitches`` per score note, ``perf_onsets``/``perf_pitches`` per
    performed note, both sorted by time. ValueError when either has no notes.
    """
    if len(score_beats) == 0 or len(perf_onsets) == 0:
        raise ValueError("locate_excerpt: the score and the performance need notes")
    import librosa

    beats, score_group = np.unique(np.asarray(score_beats, float), return_inverse=True)
    perf_group = onset_groups(np.asarray(perf_onsets, float), window_sec)
    X = _chroma(perf_group, np.asarray(perf_pitches, int))
    Y = _chroma(score_group.ravel(), np.asarray(score_pitches, int))
    _, path = librosa.sequence.dtw(X=X, Y=Y, metric="cosine", subseq=True)
    return float(beats[path[:, 1].min()]), float(beats[path[:, 1].max()])
