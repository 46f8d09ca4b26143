"""`pianoeval assess` on material no one here labelled, and its speed: writes benchmarks/assess.md.

1. Speed: release model load; a ~30 s PercePiano segment with its score on one CPU thread.
2. GiantMIDI's evaluation sample: each GiantMIDI transcription (of a recording) against the
   MAESTRO performance MIDI of the same music, both through the performance-only model. The two
   come from different pianists, so the differences bound what transcription errors move.
4. Audio: PercePiano performances rendered with MuseScore_General (a soundfont no model trained
   on), transcribed (accurate and fast modes) and assessed, against the MIDI path on the same
   performances: Pearson r per dimension over performances, and seconds per minute of audio.
3. Degradation tiers: ASAP windows (works outside PercePiano, from the degrade stage) clean
   against tiers 1-3 of each degradation family, once performance only and once with the
   work's ASAP score (the with-score variant): mean change per tier with a 95% bootstrap CI
   over windows, and the Spearman correlation of tier and score.

Run: `.venv/bin/python benchmarks/assess_bench.py [--windows N]` after `dvc repro degrade`.
"""
from __future__ import annotations

import argparse
import os
import sys
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pianoeval.assess.analysis import Release, assess  # noqa: E402
from pianoeval.data.dimensions import DIMENSIONS  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))
# the dimension each degradation family should move, and the direction "worse" takes on its scale
FAMILY_DIMENSION = {
    "timing": ("timing_stable_unstable", +1),
    "accuracy": ("interpretation_unsatisfactory_convincing", -1),
    "dynamics": ("dynamics_little_large_range", -1),
    "pedal": ("pedal_clean_blurred", +1),
    "articulation": ("articulation_long_short", 0),  # lengthen or shorten: either direction
}
QUALITY = "interpretation_unsatisfactory_convincing"


def scores(report: dict) -> dict[str, float]:
    return {d["name"]: d["score"] for d in report["dimensions"]}


def bench_speed(release_dir: Path, repeats: int = 5) -> list[str]:
    start = time.perf_counter()
    release = Release.load(release_dir)
    load = time.perf_counter() - start
    durations = {}
    for path in sorted((MIRROR / "percepiano" / "midi").glob("Schubert_D960_mv2_16bars_*.mid")):
        if "_Score" in path.name:
            continue  # a score rendering, not a performer
        from pianoeval.data.midi import read_midi
        durations[path] = read_midi(path).duration_sec
    perf = min(durations, key=lambda p: abs(durations[p] - 30.0))
    passage = perf.stem.split("_16bars_")[0] + "_16bars_Score_" + perf.stem.rsplit("_", 1)[1]
    score = MIRROR / "percepiano" / "score_midi" / f"{passage}.mid"
    assess(perf, release, score)  # warm: imports and the matcher's first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        report = assess(perf, release, score)
        times.append(time.perf_counter() - start)
    return ["## 1. Speed (one CPU thread)", "",
            "| what | seconds |", "|---|---|",
            f"| release model load | {load:.3f} |",
            f"| assess {perf.name} ({durations[perf]:.1f} s, {report['summary']['n_notes']} "
            f"notes) with its score, median of {repeats} | {statistics.median(times):.3f} |", ""]


def bench_giantmidi(release: Release) -> list[str]:
    pairs = pd.read_csv(MIRROR / "giantmidi" / "groundtruth_maestro_giantmidi-piano.csv", sep="\t")
    rows = []
    for _, pair in tqdm(pairs.iterrows(), total=len(pairs), desc="giantmidi"):
        try:
            t = scores(assess(MIRROR / "giantmidi" / "giantmidi-piano" / pair["GiantMIDI-Piano"],
                              release))
            m = scores(assess(MIRROR / "giantmidi" / "maestro" / pair["Maestro"], release))
        except Exception as exc:  # a bad file is counted, not fatal
            rows.append({"failed": f"{pair['Name']}: {exc}"})
            continue
        rows.append({**{f"t_{d}": t[d] for d in DIMENSIONS}, **{f"m_{d}": m[d] for d in DIMENSIONS}})
    frame = pd.DataFrame([r for r in rows if "failed" not in r])
    failed = [r["failed"] for r in rows if "failed" in r]
    lines = ["## 2. GiantMIDI evaluation sample: transcription vs MAESTRO performance", "",
             f"{len(frame)} pieces ({len(failed)} failed), performance-only model. Difference = "
             "transcription - MAESTRO (mean, 95% t interval); r = Pearson correlation over "
             "pieces. Different pianists play the two, so these bound the transcription's "
             "effect from above.", "",
             "| dimension | mean difference [95% CI] | r |", "|---|---|---|"]
    for d in DIMENSIONS:
        diff = frame[f"t_{d}"] - frame[f"m_{d}"]
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        r = stats.pearsonr(frame[f"t_{d}"], frame[f"m_{d}"])[0]
        lines.append(f"| {d} | {diff.mean():+.3f} [{diff.mean() - half:+.3f}, "
                     f"{diff.mean() + half:+.3f}] | {r:.2f} |")
    return lines + [""] + [f"- failed: {f}" for f in failed] + [""]


def _boot_ci(x: np.ndarray, rng, n: int = 2000) -> tuple[float, float]:
    means = rng.choice(x, size=(n, len(x))).mean(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def asap_score(item: str) -> Path:
    """The ASAP score MIDI of a degrade window ``<performance>@<start ms>-<end ms>``."""
    return MIRROR / "asap" / Path(item.split("@")[0]).parent / "midi_score.mid"


def bench_tiers(release: Release, n_windows: int, with_score: bool, seed: int = 0) -> list[str]:
    samples = pd.read_csv(ROOT / "data" / "degrade" / "samples.csv",
                          usecols=["sample", "item", "source", "family", "tier"])
    samples = samples[samples["source"] == "maestro"]
    items = sorted(samples["item"].unique())
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(items, size=min(n_windows, len(items)), replace=False))
    samples = samples[samples["item"].isin(chosen) & samples["family"].isin(
        ["clean", *FAMILY_DIMENSION])]
    rows = []
    variant = "with-score" if with_score else "performance-only"
    for sample in tqdm(samples.itertuples(), total=len(samples), desc=f"tiers {variant}"):
        path = ROOT / "data" / "degrade" / "midi" / f"{sample.sample}.mid"
        try:
            report = assess(path, release, asap_score(sample.item) if with_score else None)
            rows.append({"item": sample.item, "family": sample.family, "tier": sample.tier,
                         "fell_back": report["variant"] == "performance_only" and with_score,
                         **scores(report)})
        except Exception as exc:  # a bad file is counted, not fatal
            rows.append({"item": sample.item, "family": sample.family, "tier": sample.tier,
                         "failed": str(exc)})
    frame = pd.DataFrame(rows)
    n_failed = int(frame.get("failed", pd.Series(dtype=str)).notna().sum())
    frame = frame[frame.get("failed", pd.Series(np.nan, frame.index)).isna()]
    clean = frame[frame["family"] == "clean"].set_index("item")
    lines = [f"## 3{'b' if with_score else 'a'}. Degradation tiers, {variant} (ASAP windows, "
             "works outside PercePiano)", "",
             f"{len(chosen)} windows x (clean + 5 families x 3 tiers), {n_failed} failed; "
             + ("with-score model, each window against its work's ASAP score MIDI (excerpt "
                "located by `assess`; a window whose alignment is unreliable falls back to "
                "performance only, as `assess` does)" if with_score else "performance-only model")
             + (f"; {int(frame['fell_back'].sum())} of {len(frame)} fell back" if with_score
                else "") + ". Change = tier - clean of the same window (mean, 95% "
             "bootstrap CI over windows); rho = Spearman of tier (0-3) and score.", "",
             "| family | dimension (worse =) | tier 1 | tier 2 | tier 3 | rho |",
             "|---|---|---|---|---|---|"]
    for family, (dim, sign) in FAMILY_DIMENSION.items():
        for d, s in ((dim, sign), (QUALITY, -1)) if dim != QUALITY else ((dim, sign),):
            cells = []
            for tier in (1, 2, 3):
                t = frame[(frame["family"] == family) & (frame["tier"] == tier)].set_index("item")
                change = (t[d] - clean.loc[t.index, d]).to_numpy()
                lo, hi = _boot_ci(change, rng)
                cells.append(f"{change.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
            fam = pd.concat([clean.reset_index(),
                             frame[frame["family"] == family]])
            rho = stats.spearmanr(fam["tier"], fam[d])[0]
            worse = {1: "higher", -1: "lower", 0: "either"}[s]
            lines.append(f"| {family} | {d} ({worse}) | " + " | ".join(cells) + f" | {rho:+.2f} |")
    return lines + [""]


def bench_audio(release: Release, n: int, soundfont: str = "MuseScore_General_Full",
                seed: int = 0) -> list[str]:
    import tempfile

    import soundfile as sf

    from pianoeval.audio.render import (RenderConfig, normalize_loudness, render_performance,
                                        resolve_soundfont)
    from pianoeval.data.midi import read_midi

    sr = 44100
    files = sorted(p for p in (MIRROR / "percepiano" / "midi").glob("*.mid")
                   if "_Score" not in p.name and not p.name.startswith(" "))
    chosen = sorted(np.random.default_rng(seed).choice(files, size=n, replace=False))
    midi, audio = [], {m: [] for m in ("accurate", "fast")}
    seconds = {m: 0.0 for m in audio}
    audio_sec = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in tqdm(chosen, desc="audio"):
            wav = Path(tmp) / f"{path.stem}.wav"
            y = render_performance(read_midi(path), resolve_soundfont(soundfont)[1],
                                   RenderConfig(sample_rate=sr))
            sf.write(wav, normalize_loudness(y, sr)[0], sr)
            audio_sec += len(y) / sr
            midi.append(scores(assess(path, release)))
            for mode in audio:
                report = assess(wav, release, transcription_mode=mode)
                seconds[mode] += report["input"]["transcription"]["seconds"]
                audio[mode].append(scores(report))
    lines = ["## 4. Audio path against the MIDI path", "",
             f"{n} PercePiano performances (seeded draw), rendered with {soundfont} (no model "
             "trained on it), transcribed and assessed with the performance-only model; r = "
             "Pearson correlation over performances of the audio path's and the MIDI path's "
             "score, |d| = mean absolute difference.", "",
             "| mode | seconds per minute of audio |", "|---|---|"]
    lines += [f"| {m} | {60 * seconds[m] / audio_sec:.1f} |" for m in audio]
    lines += ["", "| dimension | r accurate | \|d\| accurate | r fast | \|d\| fast |",
              "|---|---|---|---|---|"]
    for d in DIMENSIONS:
        cells = []
        for mode in audio:
            a = np.array([s[d] for s in audio[mode]])
            b = np.array([s[d] for s in midi])
            cells += [f"{stats.pearsonr(a, b)[0]:.2f}", f"{np.abs(a - b).mean():.3f}"]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--release", type=Path, default=ROOT / "models" / "release")
    parser.add_argument("--windows", type=int, default=60)
    parser.add_argument("--audio", type=int, default=30, help="performances through audio")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "assess.md")
    args = parser.parse_args()
    release = Release.load(args.release)
    lines = ["# `pianoeval assess` benchmarks", "",
             f"Written by `benchmarks/assess_bench.py` on {machine()}. Other jobs may have shared "
             "the cores, so times are upper bounds.", ""]
    lines += bench_speed(args.release)
    lines += bench_giantmidi(release)
    lines += bench_tiers(release, args.windows, with_score=False)
    lines += bench_tiers(release, args.windows, with_score=True)
    lines += bench_audio(release, args.audio)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
