"""The degrade stage's batch: which clean items, their audio tiers, and the stage's counts.

Only the degrade stage imports this module; the degradations themselves are
``pianoeval.degrade.generate`` (MIDI) and ``pianoeval.degrade.audio``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pianoeval.audio.render import spread_pick
from pianoeval.degrade.audio import generate_audio, rendered_items
from pianoeval.degrade.generate import (maestro_clean_items, percepiano_clean_items,
                                        read_alignments)
from pianoeval.fanout import LOCAL, Fanout

PAIR_COLUMNS = ["better", "worse", "family", "item", "tier_better", "tier_worse"]


def clean_items(sources: dict, raw: Path, align_root: Path) -> tuple[list, dict]:
    """(clean items, the align stage's alignment of each performance they come from), from
    ``degrade.sources``: PercePiano segments (``max_items`` of them, spread over the sorted
    list) and windows of the ASAP/MAESTRO performances."""
    items, alignments = [], {}
    percepiano = sources.get("percepiano")
    if percepiano:
        manifest = pd.read_csv(raw / "percepiano" / "manifest.csv")
        items += spread_pick(percepiano_clean_items(manifest, raw / "percepiano"),
                             percepiano["max_items"])
        alignments |= read_alignments(align_root / "percepiano")
    maestro = sources.get("maestro")
    if maestro:
        manifest = pd.read_csv(raw / "maestro" / "manifest.csv")
        windows = maestro_clean_items(manifest, raw / "maestro", float(maestro["window_sec"]),
                                      float(maestro["hop_sec"]), maestro["max_performances"],
                                      maestro["max_windows"])
        items += windows
        performances = {i.name.split("@")[0] for i in windows}
        check_aligned(align_root / "maestro" / "alignments.csv", performances)
        alignments |= read_alignments(align_root / "maestro", performances)
    return items, alignments


def check_aligned(alignments_csv: Path, performances: set[str]) -> None:
    """Stop when the align stage skipped (by a CPU limit) a performance the windows come from:
    their features would silently go without the score."""
    if not alignments_csv.is_file():
        return
    status = pd.read_csv(alignments_csv).set_index("segment")["status"]
    skipped = sorted(p for p in performances if status.get(p) == "skipped")
    if skipped:
        raise ValueError(
            f"{alignments_csv}: {len(skipped)} of the {len(performances)} performances "
            f"degrade.sources.maestro windows were skipped by the align stage (e.g. {skipped[0]}); "
            "align.sources.maestro.max_items and max_score_notes must keep every one of them")


def audio_samples(items: list, audio: dict, seed: int, encoder_params: dict, n_jobs: int,
                  audio_root: Path, fanout: Fanout = LOCAL) -> tuple[list, list]:
    """(samples, failures) of the audio family: ``audio["max_items"]`` PercePiano items spread
    over the sorted list, degraded from their ``audio["soundfont"]`` renders (locally or on the
    Dask cluster of ``fanout``); none when ``audio["enabled"]`` is false."""
    if not audio["enabled"]:
        return [], []
    names = spread_pick(sorted(i.name for i in items if i.source == "percepiano"),
                        audio["max_items"])
    audio_items = rendered_items(pd.read_csv(audio_root / "index.csv"), audio_root,
                                 audio["soundfont"], names)
    return generate_audio(audio_items, audio, seed, encoder_params, n_jobs, fanout=fanout)


def degrade_metrics(items: list, failures: list, samples: pd.DataFrame,
                    pairs: pd.DataFrame) -> dict:
    """metrics/degrade.json: clean items per source, failures (the first 20 named), samples per
    family and tier and per variant (degraded only), pairs per family, works."""
    return {
        "n_clean_segments": {s: int(sum(i.source == s for i in items))
                             for s in ("percepiano", "maestro")},
        "n_failed": len(failures), "failed": sorted(name for name, _ in failures)[:20],
        "n_samples": len(samples),
        "n_samples_by_family_tier": {f"{f}/{t}": int(n) for (f, t), n
                                     in samples.groupby(["family", "tier"]).size().items()},
        "n_samples_by_variant": {f"{f}/{v}": int(n) for (f, v), n in samples[samples["tier"] > 0]
                                 .groupby(["family", "variant"]).size().items()},
        "n_pairs": len(pairs),
        "n_pairs_by_family": pairs["family"].value_counts().sort_index().to_dict(),
        "n_works": int(samples["work"].nunique()),
    }
