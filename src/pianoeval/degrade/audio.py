"""Audio tiers: rendered clean segments degraded by noise, clipping or low-pass filtering.

The degraded audio is not stored: it is regenerated exactly from the clean render, the variant,
the tier's level and the sample's seed (``degrade_audio``), so only its spectral description
is kept (320 pooled log-mel / CQT statistics and global descriptors, plus the clipped fraction).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pianoeval.audio.checks import clipped_fraction, load_audio
from pianoeval.degrade.tiers import N_TIERS, Sample, degrade_audio, draw_variant, stable_seed
from pianoeval.fanout import LOCAL, Fanout, fan_out

AUDIO_FAMILY = "audio"


@dataclass(frozen=True)
class AudioItem:
    name: str  # the clean item (a PercePiano segment)
    path: str  # its clean render


def _encoder(params: dict):
    from pianoeval.audio.encoders import make_encoder

    # clipping is a degradation here, so the encoder must not refuse clipped audio
    return make_encoder("spectral", {**params, "store_frames": False, "max_clipped_fraction": 1.0})


def describe_audio(y: np.ndarray, sr: int, encoder) -> dict[str, float]:
    pooled = encoder.encode(y, sr)["pooled"]
    feats = {f"audio_{n}": float(v) for n, v in zip(encoder.feature_names, pooled)}
    feats["audio_clipped_fraction"] = clipped_fraction(y)
    return feats


def audio_item_samples(item: AudioItem, levels: dict, seed: int, encoder
                       ) -> list[tuple[Sample, dict]]:
    """Tier 1..3 of one drawn variant of one rendered segment, and the clean render (tier 0,
    family ``audio`` too: audio samples get their own clean sample)."""
    y, sr = load_audio(item.path)
    variant = draw_variant(AUDIO_FAMILY, None, np.random.default_rng(
        stable_seed(seed, item.name, AUDIO_FAMILY)))
    out = [(Sample(f"{item.name}#audio0", item.name, AUDIO_FAMILY, variant, 0, {}),
            describe_audio(y, sr, encoder))]
    for tier in range(1, N_TIERS):
        sample_seed = int(stable_seed(seed, item.name, AUDIO_FAMILY, tier)[-1])
        degraded, meta = degrade_audio(y, sr, variant, tier, levels, sample_seed)
        out.append((Sample(f"{item.name}#audio{tier}", item.name, AUDIO_FAMILY, variant, tier,
                           {**meta, "seed": sample_seed}), describe_audio(degraded, sr, encoder)))
    return out


_ENCODER = None


def _chunk(args):
    global _ENCODER
    items, levels, seed, params = args
    if _ENCODER is None:
        _ENCODER = _encoder(params)
    results, failures = [], []
    for item in items:
        try:
            results += audio_item_samples(item, levels, seed, _ENCODER)
        except Exception as exc:  # counted and reported, never fatal
            failures.append((item.name, f"{type(exc).__name__}: {exc}"))
    return results, failures


def generate_audio(items: list[AudioItem], levels: dict, seed: int, encoder_params: dict,
                   n_jobs: int = 1, chunk_size: int = 8, fanout: Fanout = LOCAL):
    """``audio_item_samples`` over ``items``, in their order, locally or on the Dask cluster of
    ``fanout``; returns (samples with features, failures)."""
    chunks = [(items[i:i + chunk_size], levels, seed, encoder_params)
              for i in range(0, len(items), chunk_size)]
    results, failures = [], []
    with tqdm(total=len(items), desc="degrade audio", unit="segment") as bar:
        for args, (r, f) in zip(chunks, fan_out(_chunk, chunks, n_jobs, fanout)):
            results += r
            failures += f
            bar.update(len(args[0]))
    return results, failures


def rendered_items(index, audio_root: Path, soundfont: str, names: list[str]) -> list[AudioItem]:
    """The clean renders (``data/audio/index.csv`` rows, status ok) of ``names`` in one
    soundfont."""
    ok = index[(index["source"] == "percepiano") & (index["soundfont"] == soundfont)
               & (index["status"] == "ok")]
    path = dict(zip(ok["item"].str.removesuffix(".mid"), ok["file"]))  # names may contain dots
    return [AudioItem(n, str(audio_root / path[n])) for n in names if n in path]
