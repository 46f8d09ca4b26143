"""DVC stage `degrade`: quality tiers of clean segments, with metadata, features and pairs.

Reads the ingested MIDI, the align stage's alignments and the clean renders; writes
data/degrade/samples.csv (one row per sample: item, source, work, family, variant, tier, each
degradation's magnitude `deg_*`, then features), data/degrade/pairs.csv (better/worse sample
pairs of one passage), data/degrade/midi/<sample>.mid and metrics/degrade.json (counts).
"""
import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

from pianoeval.align.batch import AlignConfig
from pianoeval.degrade.audio import generate_audio, rendered_items
from pianoeval.degrade.generate import (GenerateConfig, generate, maestro_clean_items,
                                        percepiano_clean_items, read_alignments, samples_frame)
from pianoeval.degrade.tiers import tier_pairs
from pianoeval.audio.render import spread_pick
from pianoeval.params import load_params

log = logging.getLogger("degrade")
PAIR_COLUMNS = ["better", "worse", "family", "item", "tier_better", "tier_worse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/degrade"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/degrade.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("degrade")
    raw = Path("data/raw")

    items, alignments = [], {}
    percepiano = params["sources"].get("percepiano")
    if percepiano:
        manifest = pd.read_csv(raw / "percepiano" / "manifest.csv")
        items += spread_pick(percepiano_clean_items(manifest, raw / "percepiano"),
                             percepiano["max_items"])
        alignments |= read_alignments(Path("data/align/percepiano"))
    maestro = params["sources"].get("maestro")
    if maestro:
        manifest = pd.read_csv(raw / "maestro" / "manifest.csv")
        windows = maestro_clean_items(manifest, raw / "maestro", float(maestro["window_sec"]),
                                      float(maestro["hop_sec"]), maestro["max_performances"],
                                      maestro["max_windows"])
        items += windows
        alignments |= read_alignments(Path("data/align/maestro"),
                                      {i.name.split("@")[0] for i in windows})
    config = GenerateConfig(params["families"], int(params["seed"]),
                            AlignConfig.from_params(load_params("align")).deviations,
                            str(args.out / "midi") if params["write_midi"] else None)
    start = time.perf_counter()
    pairs_in = [(i, alignments.get(i.name.split("@")[0])) for i in items]
    results, failures = generate(pairs_in, config, n_jobs=int(params["n_jobs"]))
    midi_seconds = time.perf_counter() - start

    audio = params["audio"]
    if audio["enabled"]:
        index = pd.read_csv("data/audio/index.csv")
        names = spread_pick(sorted(i.name for i in items if i.source == "percepiano"),
                            audio["max_items"])
        audio_items = rendered_items(index, Path("data/audio"), audio["soundfont"], names)
        encoder_params = load_params("encode_audio")["spectral"]
        audio_results, audio_failures = generate_audio(
            audio_items, audio, int(params["seed"]), encoder_params, int(params["n_jobs"]))
        results, failures = results + audio_results, failures + audio_failures

    by_name = {i.name: i for i in items}
    samples = samples_frame(results, by_name)
    pairs = pd.DataFrame(tier_pairs([s for s, _ in results]), columns=PAIR_COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    samples.to_csv(args.out / "samples.csv", index=False, float_format="%.7g")
    pairs.to_csv(args.out / "pairs.csv", index=False)
    for name, error in failures:
        log.warning("skipped %s: %s", name, error)
    n_clean = sum(1 for i in items if i.name not in {f for f, _ in failures})
    log.info("%d clean segments -> %d MIDI samples in %.1f s (%.1f segments/s); %d samples, "
             "%d pairs in all", n_clean, int((samples["family"] != "audio").sum()), midi_seconds,
             n_clean / max(midi_seconds, 1e-9), len(samples), len(pairs))
    metrics = {
        "n_clean_segments": {s: int(sum(i.source == s for i in items)) for s in ("percepiano", "maestro")},
        "n_failed": len(failures), "failed": sorted(name for name, _ in failures)[:20],
        "n_samples": len(samples),
        "n_samples_by_family_tier": {f"{f}/{t}": int(n) for (f, t), n
                                     in samples.groupby(["family", "tier"]).size().items()},
        "n_samples_by_variant": {f"{f}/{v}": int(n) for (f, v), n
                                 in samples[samples["tier"] > 0].groupby(["family", "variant"]).size().items()},
        "n_pairs": len(pairs),
        "n_pairs_by_family": pairs["family"].value_counts().sort_index().to_dict(),
        "n_works": int(samples["work"].nunique()),
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
