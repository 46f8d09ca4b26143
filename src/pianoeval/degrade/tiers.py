"""Quality tiers: each degradation family applied at tier 1 (mild), 2 (moderate), 3 (severe).

A family maps to perceptual dimensions and bundles its degradations; a *variant* picks one of
them where the family has alternatives (pedal: ``removal`` or ``over_pedal``; articulation:
``shorten`` or ``lengthen``; audio: ``noise``, ``clip`` or ``low_pass``). The variant is drawn
once per (clean segment, family), so the three tiers of a segment differ only in magnitude and
their quality order is known. Tier 0 is the clean segment itself.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pianoeval.data.midi import Performance
from pianoeval.degrade import transforms as T

N_TIERS = 4  # 0 clean .. 3 severe

FAMILY_DIMENSIONS = {  # PercePiano dimensions (pianoeval.data.dimensions) each family targets
    "timing": ["timing_stable_unstable", "music_making_disproportioned_balanced"],
    "accuracy": ["interpretation_unsatisfactory_convincing", "timing_stable_unstable"],
    "dynamics": ["dynamics_little_large_range", "dynamics_mellow_raw"],
    "pedal": ["pedal_sparse_saturated", "pedal_clean_blurred"],
    "articulation": ["articulation_long_short", "articulation_soft_hard"],
    "audio": ["timbre_bright_dark", "timbre_shallow_rich", "timbre_even_colorful"],
}
VARIANTS = {"timing": ["jitter_drift"], "accuracy": ["substitution_deletion"],
            "dynamics": ["compression_randomization"], "pedal": ["removal", "over_pedal"],
            "articulation": ["shorten", "lengthen"], "audio": ["noise", "clip", "low_pass"]}
MIDI_FAMILIES = ("timing", "accuracy", "dynamics", "pedal", "articulation")


def stable_seed(*parts) -> list[int]:
    """A seed sequence from strings and ints that does not depend on Python's hash salt."""
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]


def has_sustain(perf: Performance) -> bool:
    return bool(T.sustain_spans(perf.controls, perf.duration_sec))


def draw_variant(family: str, perf: Performance | None, rng: np.random.Generator) -> str:
    """The family's variant for one segment; pedal removal needs a pedalled segment."""
    options = list(VARIANTS[family])
    if family == "pedal" and perf is not None and not has_sustain(perf):
        options = ["over_pedal"]
    return str(options[rng.integers(len(options))])


def _level(levels: dict, key: str, tier: int) -> float:
    values = levels[key]
    if len(values) != N_TIERS - 1:
        raise ValueError(f"degrade level {key!r} needs {N_TIERS - 1} values (tiers 1..3), "
                         f"got {values}")
    return float(values[tier - 1])


def degrade_midi(perf: Performance, family: str, variant: str, tier: int, levels: dict,
                 rng: np.random.Generator) -> tuple[Performance, dict]:
    """``perf`` degraded by ``family`` (its ``variant``) at ``tier`` with magnitudes from
    ``levels`` (the family's params: one list of three values per key). Returns the degraded
    performance and the applied magnitudes."""
    if tier == 0:
        return perf, {}
    lv = lambda key: _level(levels, key, tier)
    if family == "timing":
        meta = {"jitter_ms": lv("jitter_ms"), "drift_depth": lv("drift_depth")}
        perf = T.tempo_drift(perf, meta["drift_depth"], rng, float(levels.get("drift_knot_sec", 2.0)))
        perf = T.timing_jitter(perf, meta["jitter_ms"] / 1000.0, rng)
    elif family == "accuracy":
        meta = {"substitution_rate": lv("substitution_rate"), "deletion_rate": lv("deletion_rate")}
        perf = T.delete_notes(perf, meta["deletion_rate"], rng)
        flag = "wrong" if "wrong" in (perf.notes.dtype.names or ()) else None
        perf = T.substitute_notes(perf, meta["substitution_rate"], rng, flag=flag)
    elif family == "dynamics":
        meta = {"compression": lv("compression"), "randomization_sigma": lv("randomization_sigma")}
        perf = T.compress_velocity(perf, meta["compression"])
        perf = T.randomize_velocity(perf, meta["randomization_sigma"], rng)
    elif family == "pedal" and variant == "removal":
        meta = {"removal_fraction": lv("removal_fraction")}
        perf = T.remove_pedal(perf, meta["removal_fraction"], rng)
    elif family == "pedal" and variant == "over_pedal":
        meta = {"over_pedal_fraction": lv("over_pedal_fraction")}
        perf = T.over_pedal(perf, meta["over_pedal_fraction"], rng)
    elif family == "articulation":
        key = f"{variant}_factor"
        meta = {key: lv(key)}
        perf = T.scale_durations(perf, meta[key])
    else:
        raise ValueError(f"unknown MIDI degradation {family}/{variant}")
    return perf, meta


AUDIO_LEVEL_KEYS = {"noise": "snr_db", "clip": "percent", "low_pass": "cutoff_hz"}


def degrade_audio(y: np.ndarray, sr: int, variant: str, tier: int, levels: dict,
                  seed: int) -> tuple[np.ndarray, dict]:
    """Rendered audio degraded by ``variant`` (noise / clip / low_pass, see
    ``pianoeval.audio.augment``) at ``tier``; returns the audio and the applied level."""
    from pianoeval.audio.augment import degrade

    if tier == 0:
        return y, {}
    key = AUDIO_LEVEL_KEYS[variant]
    level = _level(levels, f"{variant}_{key}", tier)
    if key == "percent":
        level = int(level)
    return degrade(y, sr, variant, seed=seed, **{key: level}), {f"{variant}_{key}": level}


@dataclass(frozen=True)
class Sample:
    """One generated sample: the clean item it comes from and how it was degraded."""

    sample: str
    item: str
    family: str  # "clean" for tier 0
    variant: str
    tier: int
    meta: dict


def tier_pairs(samples: list[Sample]) -> list[tuple[str, str, str, str, int, int]]:
    """Ranking pairs (better, worse, family, item, tier_better, tier_worse): within one item and
    family every two tiers. A family without its own tier-0 sample shares the item's ``clean``
    one (the MIDI families); the audio family has its own clean render."""
    shared_clean = {s.item: s for s in samples if s.family == "clean"}
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        if s.family != "clean":
            groups.setdefault((s.item, s.family), []).append(s)
    pairs = []
    for (item, family), members in sorted(groups.items()):
        if item in shared_clean and not any(m.tier == 0 for m in members):
            members = members + [shared_clean[item]]
        ladder = sorted(members, key=lambda s: s.tier)
        for i, a in enumerate(ladder):
            for b in ladder[i + 1:]:
                if a.tier < b.tier:
                    pairs.append((a.sample, b.sample, family, item, a.tier, b.tier))
    return pairs
