"""Reading audio files and refusing audio an encoder must not see.

Every problem is a ValueError whose message names it: empty, not mono, non-finite samples,
an invalid or unexpected sample rate, too short, silent, clipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pianoeval.audio.render import gated_rms_dbfs

MIN_RATE, MAX_RATE = 1000, 384000


def clipped_fraction(y: np.ndarray, rel_tol: float = 1e-4) -> float:
    """Share of samples that sit at the signal's peak magnitude next to another such sample.

    Clipping (hard or soft-knee at a threshold, at full scale or below it) leaves flat runs
    at the peak level; a natural waveform touches its peak for single samples (even a pure
    sine at 440 Hz and 24 kHz has no two neighbours within 0.01 % of its peak).
    """
    a = np.abs(np.asarray(y, np.float64))
    if len(a) < 2:
        return 0.0
    peak = a.max()
    if peak <= 0:
        return 0.0
    at_peak = a >= peak * (1 - rel_tol)
    runs = at_peak[1:] & at_peak[:-1]
    flagged = np.zeros(len(a), bool)
    flagged[1:] |= runs
    flagged[:-1] |= runs
    return float(flagged.mean())


def validate_audio(y, sr, expected_sr: int | None = None, min_sec: float = 0.5,
                   silence_dbfs: float = -70.0, max_clipped_fraction: float = 0.01,
                   what: str = "audio") -> np.ndarray:
    """Return ``y`` as a float32 1-D array, or raise ValueError naming the problem."""
    integer = isinstance(sr, (int, np.integer)) and not isinstance(sr, bool)
    if not integer or not MIN_RATE <= sr <= MAX_RATE:
        raise ValueError(f"{what}: invalid sample rate {sr!r} (an integer from {MIN_RATE} to "
                         f"{MAX_RATE} Hz expected)")
    if expected_sr is not None and sr != expected_sr:
        raise ValueError(f"{what}: wrong sample rate {sr} Hz, expected {expected_sr} Hz "
                         "(resample first, or set the encoder's sample_rate)")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{what}: expected mono 1-D samples, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{what}: empty (zero length, no samples)")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{what}: expected float samples in [-1, 1], got dtype {y.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise ValueError(f"{what}: {bad} NaN/inf samples of {y.size}")
    if y.size < min_sec * sr:
        raise ValueError(f"{what}: too short, {y.size / sr:.3f} s (at least {min_sec} s needed)")
    level = gated_rms_dbfs(y, sr)
    if not level > silence_dbfs:
        raise ValueError(f"{what}: silent (gated level {level:.1f} dBFS, threshold "
                         f"{silence_dbfs} dBFS)")
    clipped = clipped_fraction(y)
    if clipped > max_clipped_fraction:
        raise ValueError(f"{what}: clipped, {clipped:.2%} of samples in flat runs at the peak "
                         f"(more than {max_clipped_fraction:.2%})")
    return y.astype(np.float32, copy=False)


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 mono samples and the sample rate of an audio file (channels averaged)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such audio file")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError variants
        raise ValueError(f"{path}: cannot read audio ({exc})") from exc
    return y.mean(axis=1), int(sr)
