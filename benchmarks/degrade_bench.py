"""Degradation throughput on this machine -> benchmarks/degrade.md.

Times `generate` (every MIDI family x tier 1..3 plus the clean sample, with features and the
composed score alignment, MIDI files written) on PercePiano segments with 1 and 2 worker
processes, and the audio tiers (degrade + spectral encoding) on a few clean renders.
Needs `dvc repro align@percepiano render` first.

    .venv/bin/python benchmarks/degrade_bench.py [--n 100] [--out benchmarks/degrade.md]
"""
import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pianoeval.align.batch import AlignConfig
from pianoeval.audio.render import spread_pick
from pianoeval.degrade.audio import generate_audio, rendered_items
from pianoeval.degrade.generate import (GenerateConfig, generate, percepiano_clean_items,
                                        read_alignments)
from pianoeval.params import load_params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="PercePiano segments to degrade")
    parser.add_argument("--n-audio", type=int, default=20, help="renders to degrade")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "degrade.md")
    args = parser.parse_args()
    params = load_params("degrade", ROOT / "params.yaml")
    raw = ROOT / "data" / "raw" / "percepiano"
    items = spread_pick(percepiano_clean_items(pd.read_csv(raw / "manifest.csv"), raw), args.n)
    alignments = read_alignments(ROOT / "data" / "align" / "percepiano", {i.name for i in items})
    deviations = AlignConfig.from_params(load_params("align", ROOT / "params.yaml")).deviations
    rows = []
    for n_jobs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            config = GenerateConfig(params["families"], int(params["seed"]), deviations, tmp)
            start = time.perf_counter()
            results, failures = generate([(i, alignments.get(i.name)) for i in items], config,
                                         n_jobs=n_jobs)
            seconds = time.perf_counter() - start
        rows.append(f"| MIDI tiers (5 families x 3 tiers + clean, features, MIDI written) | "
                    f"{n_jobs} | {len(items)} | {len(results)} | {seconds:.1f} | "
                    f"{len(items) / seconds:.2f} | {len(results) / seconds:.1f} |")
    index = pd.read_csv(ROOT / "data" / "audio" / "index.csv")
    audio = params["audio"]
    audio_items = rendered_items(index, ROOT / "data" / "audio", audio["soundfont"],
                                 [i.name for i in spread_pick(items, args.n_audio)])
    encoder = load_params("encode_audio", ROOT / "params.yaml")["spectral"]
    start = time.perf_counter()
    results, _ = generate_audio(audio_items, audio, int(params["seed"]), encoder, n_jobs=1)
    seconds = time.perf_counter() - start
    rows.append(f"| audio tiers (1 variant x 3 tiers + clean, spectral features) | 1 | "
                f"{len(audio_items)} | {len(results)} | {seconds:.1f} | "
                f"{len(audio_items) / seconds:.2f} | {len(results) / seconds:.1f} |")
    text = "\n".join([
        "# Degradation throughput", "",
        f"Machine: {machine()}. Measured {datetime.date.today().isoformat()} with "
        "`benchmarks/degrade_bench.py` (wall time, other work may share the cores).", "",
        "| what | processes | clean segments | samples | seconds | segments/s | samples/s |",
        "|---|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
