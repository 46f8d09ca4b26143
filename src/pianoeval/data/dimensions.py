"""The 19 PercePiano perceptual dimensions, in label order (low end -> high end of each scale)."""

DIMENSIONS: tuple[str, ...] = (
    "timing_stable_unstable",
    "articulation_long_short",
    "articulation_soft_hard",
    "pedal_sparse_saturated",
    "pedal_clean_blurred",
    "timbre_even_colorful",
    "timbre_shallow_rich",
    "timbre_bright_dark",
    "timbre_soft_loud",
    "dynamics_mellow_raw",
    "dynamics_little_large_range",
    "music_making_fast_slow_paced",
    "music_making_flat_spacious",
    "music_making_disproportioned_balanced",
    "music_making_pure_dramatic",
    "mood_optimistic_dark",
    "mood_low_high_energy",
    "mood_honest_imaginative",
    "interpretation_unsatisfactory_convincing",
)
N_DIMS = len(DIMENSIONS)
