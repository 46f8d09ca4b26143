"""DVC stage `degrade`: quality tiers of clean segments, with metadata, features and pairs.

Writes data/degrade/samples.csv (one row per sample: item, source, work, family, variant, tier,
`deg_*` magnitudes, features), pairs.csv (better/worse pairs of one passage), midi/<sample>.mid
and metrics/degrade.json (counts). Steps: pianoeval.degrade.batch."""
import argparse
import json
import time
from pathlib import Path

import pandas as pd

from pianoeval.align.batch import AlignConfig
from pianoeval.config import load_config
from pianoeval.degrade.batch import PAIR_COLUMNS, audio_samples, clean_items, degrade_metrics
from pianoeval.degrade.generate import GenerateConfig, generate, samples_frame
from pianoeval.degrade.tiers import tier_pairs
from pianoeval.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/degrade"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/degrade.json"))
    args = parser.parse_args()
    log = setup_logging("degrade")
    cfg, fanout = load_config("degrade"), load_config("fanout")  # both checked before any work
    params = cfg.model_dump()
    items, alignments = clean_items(params["sources"], Path("data/raw"), Path("data/align"))
    config = GenerateConfig(params["families"], cfg.seed,
                            AlignConfig.from_params(load_config("align").model_dump()).deviations,
                            str(args.out / "midi") if cfg.write_midi else None)
    start = time.perf_counter()
    results, failures = generate([(i, alignments.get(i.name.split("@")[0])) for i in items],
                                 config, n_jobs=cfg.n_jobs, fanout=fanout)
    midi_seconds = time.perf_counter() - start
    audio_results, audio_failures = audio_samples(  # none unless degrade.audio.enabled
        items, params["audio"], cfg.seed, load_config("encode_audio").spectral.model_dump(),
        cfg.n_jobs, Path("data/audio"), fanout)
    results, failures = results + audio_results, failures + audio_failures
    samples = samples_frame(results, {i.name: i for i in items})
    pairs = pd.DataFrame(tier_pairs([s for s, _ in results]), columns=PAIR_COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    samples.to_csv(args.out / "samples.csv", index=False, float_format="%.7g")
    pairs.to_csv(args.out / "pairs.csv", index=False)
    for name, error in failures:
        log.warning("skipped %s: %s", name, error)
    failed = {f for f, _ in failures}
    log.info("%d clean segments -> %d MIDI samples in %.1f s; %d samples, %d pairs in all",
             sum(i.name not in failed for i in items), int((samples["family"] != "audio").sum()),
             midi_seconds, len(samples), len(pairs))
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(
        json.dumps(degrade_metrics(items, failures, samples, pairs), indent=2) + "\n")


if __name__ == "__main__":
    main()
