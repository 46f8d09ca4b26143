"""Audio augmentation (audiomentations), seeded and deterministic.

Two families, kept apart on purpose:

- ``augment_chain``: a *quality-preserving* chain for training on more varied audio without
  changing what a listener would rate: a synthetic room impulse response (light reverb),
  a small pitch shift, gain, and Gaussian noise at an SNR above 20 dB; the result is kept
  below -1 dBFS peak.
- the *quality-degrading* transforms ``add_noise`` (SNR below 10 dB for a degradation),
  ``clip``, ``low_pass`` and ``band_limit`` (codec-like: a telephone-like band and fewer bits),
  one function each, every one with an exact level (no random range), for the later
  degradation stage. ``DEGRADATIONS`` maps their names to them.

audiomentations draws its random parameters from Python's ``random`` and its noise from NumPy's
global generator; every call here seeds both from ``seed`` and restores their previous state
afterwards, so a seed gives the same output on every run and no caller's random stream moves.
"""
from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path

import numpy as np

IR_SAMPLE_RATE = 24000


@contextlib.contextmanager
def seeded(seed: int):
    """Seed ``random`` and NumPy's global generator, restoring both afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(int(seed))
    np.random.seed(int(seed) % 2 ** 32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _as_float32(y) -> np.ndarray:
    y = np.asarray(y, np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"expected non-empty mono 1-D audio, got shape {y.shape}")
    return y


def _peak_guard(y: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    ceiling = 10 ** (peak_dbfs / 20)
    peak = float(np.max(np.abs(y)))
    return (y * np.float32(ceiling / peak)).astype(np.float32) if peak > ceiling else y


# ----------------------------------------------------------------------------- impulse responses

def synth_impulse_response(sr: int, rt60: float, drr_db: float, seed: int,
                           predelay_sec: float = 0.005) -> np.ndarray:
    """A room-like impulse response: a unit direct path, then exponentially decaying Gaussian
    noise (-60 dB after ``rt60`` seconds) whose energy sits ``drr_db`` below the direct path."""
    rng = np.random.default_rng(seed)
    n = int(round(rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.907755 * t / rt60)
    start = int(round(predelay_sec * sr))
    tail[:start] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail.astype(np.float32)


def impulse_response_files(folder: str | Path, sr: int = IR_SAMPLE_RATE,
                           rt60s=(0.3, 0.5, 0.8, 1.2), drr_db: float = 8.0,
                           seed: int = 0) -> list[Path]:
    """Synthetic impulse responses written as WAV files into ``folder`` for
    ApplyImpulseResponse, which reads IRs only from files. Written on every call (4 short files),
    so a file from other code or arguments is never reused; each goes through a temporary name
    of its own and a rename, so writers sharing ``folder`` never read a half-written file."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rt60 in enumerate(rt60s):
        path = folder / f"ir_rt{int(rt60 * 1000):04d}ms_drr{drr_db:g}_s{seed + i}.wav"
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".wav", delete=False) as tmp:
            sf.write(tmp.name, synth_impulse_response(sr, rt60, drr_db, seed + i), sr,
                     subtype="FLOAT")
        Path(tmp.name).replace(path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- preserving chain

AUGMENT_DEFAULTS = {
    "pitch_semitones": 0.3,  # uniform in +-this; 0 disables
    "snr_db": [25.0, 45.0],  # Gaussian noise SNR range (kept above 20 dB)
    "gain_db": [-6.0, 3.0],
    "reverb_rt60s": [0.3, 0.5, 0.8, 1.2],  # synthetic IRs; empty disables
    "reverb_drr_db": 8.0,  # direct-to-reverberant ratio of the IRs
    "p": 0.5,  # probability of each transform
    "ir_folder": None,  # where the IR files go (None: a temporary folder of the chain's own)
}


def augment_chain(**params):
    """A function ``(y, sr, seed) -> y`` applying the quality-preserving chain."""
    import audiomentations as A

    unknown = set(params) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"augment_chain: unknown parameters {sorted(unknown)}")
    p = {**AUGMENT_DEFAULTS, **params}
    lo, hi = p["snr_db"]
    if lo <= 20:
        raise ValueError(f"augment_chain: snr_db {p['snr_db']} must stay above 20 dB to preserve "
                         "quality (use add_noise for a degradation)")
    prob = float(p["p"])
    transforms, scratch = [], None
    if p["reverb_rt60s"]:
        if p["ir_folder"] is None:  # removed when the chain is garbage-collected or at exit
            scratch = tempfile.TemporaryDirectory(prefix="pianoeval_irs_")
        irs = impulse_response_files(p["ir_folder"] or scratch.name,
                                     rt60s=tuple(p["reverb_rt60s"]),
                                     drr_db=float(p["reverb_drr_db"]))
        transforms.append(A.ApplyImpulseResponse(ir_path=[str(x) for x in irs], p=prob,
                                                 leave_length_unchanged=True))
    if p["pitch_semitones"]:
        s = float(p["pitch_semitones"])
        transforms.append(A.PitchShift(min_semitones=-s, max_semitones=s, p=prob))
    transforms.append(A.Gain(min_gain_db=float(p["gain_db"][0]),
                             max_gain_db=float(p["gain_db"][1]), p=prob))
    transforms.append(A.AddGaussianSNR(min_snr_db=float(lo), max_snr_db=float(hi), p=prob))
    chain = A.Compose(transforms)

    def augment(y, sr: int, seed: int) -> np.ndarray:
        y = _as_float32(y)
        with seeded(seed):
            out = chain(samples=y, sample_rate=int(sr))
        return _peak_guard(np.asarray(out, np.float32))

    augment.ir_folder = scratch  # the IR files live as long as the chain that reads them
    return augment


# ----------------------------------------------------------------------------- degradations

def add_noise(y, sr: int, snr_db: float, seed: int = 0) -> np.ndarray:
    """White Gaussian noise at exactly ``snr_db`` below the signal's RMS (whole clip)."""
    import audiomentations as A

    y = _as_float32(y)
    with seeded(seed):
        return A.AddGaussianSNR(min_snr_db=snr_db, max_snr_db=snr_db, p=1.0)(
            samples=y, sample_rate=int(sr))


def clip(y, sr: int, percent: int, seed: int = 0) -> np.ndarray:
    """Hard clipping of the ``percent`` % most extreme samples (half at each polarity)."""
    import audiomentations as A

    y = _as_float32(y)
    if not 0 <= int(percent) <= 100:
        raise ValueError(f"clip: percent must be in 0..100, got {percent}")
    with seeded(seed):
        return A.ClippingDistortion(min_percentile_threshold=int(percent),
                                    max_percentile_threshold=int(percent), p=1.0)(
            samples=y, sample_rate=int(sr))


def low_pass(y, sr: int, cutoff_hz: float, rolloff_db: int = 24, seed: int = 0) -> np.ndarray:
    """Butterworth low-pass at ``cutoff_hz`` (``rolloff_db`` dB/octave, a multiple of 6)."""
    import audiomentations as A

    y = _as_float32(y)
    with seeded(seed):
        return A.LowPassFilter(min_cutoff_freq=cutoff_hz, max_cutoff_freq=cutoff_hz,
                               min_rolloff=rolloff_db, max_rolloff=rolloff_db, p=1.0)(
            samples=y, sample_rate=int(sr))


def band_limit(y, sr: int, low_hz: float = 300.0, high_hz: float = 3400.0,
               bit_depth: int | None = 8, seed: int = 0) -> np.ndarray:
    """Codec-like band-limiting: high-pass at ``low_hz``, steep low-pass at ``high_hz`` (a
    telephone band by default) and, optionally, quantisation to ``bit_depth`` bits."""
    import audiomentations as A

    y = _as_float32(y)
    transforms = [A.HighPassFilter(min_cutoff_freq=low_hz, max_cutoff_freq=low_hz,
                                   min_rolloff=24, max_rolloff=24, p=1.0),
                  A.LowPassFilter(min_cutoff_freq=high_hz, max_cutoff_freq=high_hz,
                                  min_rolloff=48, max_rolloff=48, p=1.0)]
    if bit_depth:
        transforms.append(A.BitCrush(min_bit_depth=int(bit_depth), max_bit_depth=int(bit_depth),
                                     p=1.0))
    with seeded(seed):
        return A.Compose(transforms)(samples=y, sample_rate=int(sr))


DEGRADATIONS = {"noise": add_noise, "clip": clip, "low_pass": low_pass, "band_limit": band_limit}


def degrade(y, sr: int, kind: str, seed: int = 0, **level) -> np.ndarray:
    """``DEGRADATIONS[kind](y, sr, **level, seed=seed)``, e.g. ``degrade(y, sr, "noise",
    snr_db=5)``."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r} (have: {sorted(DEGRADATIONS)})")
    return DEGRADATIONS[kind](y, sr, seed=seed, **level)


def snr_db(clean, noisy) -> float:
    """Measured SNR of ``noisy`` against ``clean`` (whole-clip power ratio)."""
    clean = np.asarray(clean, np.float64)
    noise = np.asarray(noisy, np.float64) - clean
    return float(10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2)))
