"""Alignment accuracy and throughput on this machine -> benchmarks/align.md.

1. Known answers: PercePiano score renderings turned into synthetic performances (tempo
   random walk, onset jitter, dropped and extra notes, all seeded) so the true note pairs are
   known; F1 of the matched pairs and time per matcher.
2. Real segments: match rate (matched / score notes) and time per matcher on a seeded sample,
   and the `Score` renderings (the score played back: the answer is every note).
3. Throughput of the align stage's code on all PercePiano segments (params `align`).
4. ASAP/MAESTRO cost: time against score x performance notes on performances of growing size,
   extrapolated to all 1,067 performances and to the `align.sources.maestro` limit.

Timings belong here, not in metrics/ (metrics must stay deterministic).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)

from pianoeval.align.batch import AlignConfig, align_items, limit_items, source_items  # noqa: E402
from pianoeval.align.match import make_matcher, performance_note_array, score_index  # noqa: E402
from pianoeval.assess.takes import render_performance  # noqa: E402
from pianoeval.align.score import load_score  # noqa: E402
from pianoeval.data.midi import read_midi  # noqa: E402
from pianoeval.params import load_params  # noqa: E402

LEVELS = {  # name: (deleted share, inserted share, log-tempo step sd per beat, onset jitter s)
    "exact": (0.0, 0.0, 0.0, 0.0),
    "mild": (0.03, 0.03, 0.10, 0.010),
    "strong": (0.10, 0.10, 0.30, 0.030),
}


def matchers():
    """Name -> callable(score notes, performance notes) -> parangonar alignment list."""
    import parangonar

    def online(cls):
        return lambda s, p: cls(s).offline(p)

    return {
        "dualdtw (ours: SetDTW onsets)": make_matcher("dualdtw"),
        "dualdtw (stock parangonar)": parangonar.DualDTWNoteMatcher(),
        "automatic": make_matcher("automatic"),
        "toltw": online(parangonar.TOLTWMatcher),
        "oltw": online(parangonar.OLTWMatcher),
    }


def synthetic(score: np.ndarray, rng, deleted, inserted, tempo_sd, jitter):
    """(performance note array, true {score id: performance id}) from a score note array (the
    model of ``assess.takes.render_performance``)."""
    notes, source = render_performance(score, rng, deleted, inserted, tempo_sd, jitter)
    perf = performance_note_array(notes)
    return perf, {score["id"][s]: p for s, p in zip(source, perf["id"]) if s >= 0}


def f1(predicted: dict, truth: dict) -> float:
    correct = sum(truth.get(s) == p for s, p in predicted.items())
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(truth) if truth else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def pairs(alignment) -> dict:
    return {str(a["score_id"]): str(a["performance_id"]) for a in alignment
            if a["label"] == "match"}


def timed(fn, *args):
    start = time.perf_counter()
    try:
        out = fn(*args)
    except Exception:  # a matcher that raises on an input counts as a failure, not a crash
        out = None
    return out, time.perf_counter() - start


def warm_up(all_matchers, score, perf) -> None:
    """First calls compile numba code; keep that out of the per-item times."""
    for fn in all_matchers.values():
        timed(fn, score.notes, perf)


def bench_synthetic(scores: list[Path], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    all_matchers = matchers()
    rows = []
    for path in scores:
        score = load_score(path)
        plain = score.notes[score.notes["is_grace"] == 0]
        for level, spec in LEVELS.items():
            perf, truth = synthetic(plain, rng, *spec)
            for name, fn in all_matchers.items():
                alignment, seconds = timed(fn, plain, perf)
                rows.append({"level": level, "matcher": name, "failed": alignment is None,
                             "f1": np.nan if alignment is None else f1(pairs(alignment), truth),
                             "seconds": seconds})
    return pd.DataFrame(rows)


def bench_real(items, all_matchers) -> pd.DataFrame:
    rows = []
    for item in items:
        score = load_score(item.score)
        perf = performance_note_array(read_midi(item.performance).notes)
        for name, fn in all_matchers.items():
            alignment, seconds = timed(fn, score.notes, perf)
            matched = np.nan if alignment is None else \
                (score_index(alignment, score.notes["id"], perf["id"]) >= 0).sum()
            rate = matched / len(score.notes)
            rows.append({"segment": item.name, "matcher": name, "match_rate": rate,
                         "seconds": seconds, "score_rendering": "_Score_" in item.name})
    return pd.DataFrame(rows)


def bench_asap(raw: Path, n: int, max_notes: int) -> pd.DataFrame:
    manifest = pd.read_csv(raw / "manifest.csv")
    counts = dict(zip(manifest["file"], manifest["n_notes"]))
    items = [it for it in source_items("maestro", manifest, raw)
             if it.score and counts[it.score_file] <= max_notes]
    items.sort(key=lambda it: counts[it.score_file])
    picks = [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round()]
    dualdtw = make_matcher("dualdtw")
    rows = []
    for item in picks:
        score = load_score(item.score)
        perf = performance_note_array(read_midi(item.performance).notes)
        alignment, seconds = timed(dualdtw, score.notes, perf)
        matched = (score_index(alignment, score.notes["id"], perf["id"]) >= 0).sum()
        rows.append({"performance": item.name, "score_notes": len(score.notes),
                     "performance_notes": len(perf), "match_rate": matched / len(score.notes),
                     "seconds": seconds})
    return pd.DataFrame(rows)


def last_maestro_run(path: Path) -> list[str]:
    """What the last `align@maestro` run measured (per-item matcher seconds), if there is one."""
    if not path.is_file():
        return []
    runs = pd.read_csv(path)
    done = runs[runs["status"] != "skipped"]
    fallback = done[done["matcher"] == "automatic"]
    return [f"The last `align@maestro` run ({len(done)} performances aligned, "
            f"{len(runs) - len(done)} skipped) spent {done['seconds'].sum() / 60:.1f} CPU-min in "
            f"the matchers, {fallback['seconds'].sum() / 60:.1f} of them on the "
            f"{len(fallback)} item(s) the `automatic` fallback won, plus score parsing, numba "
            "compilation in each worker and the deviation features (its wall time is in the "
            "stage log).", ""]


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = list(frame.columns)
    fmt = lambda v: f"{v:{floatfmt}}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "align.md")
    parser.add_argument("--n-synthetic", type=int, default=30, help="score renderings")
    parser.add_argument("--n-real", type=int, default=60, help="real segments per matcher")
    parser.add_argument("--n-asap", type=int, default=10, help="ASAP performances to time")
    parser.add_argument("--asap-max-notes", type=int, default=6000,
                        help="largest ASAP score timed (the fit extrapolates beyond)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = load_params("align", ROOT / "params.yaml")
    raw = ROOT / "data" / "raw"
    manifest = pd.read_csv(raw / "percepiano" / "manifest.csv")
    items = [it for it in source_items("percepiano", manifest, raw / "percepiano") if it.score]
    rng = np.random.default_rng(args.seed)
    scores = sorted({Path(it.score) for it in items})
    sample_scores = [scores[i] for i in sorted(rng.choice(len(scores), args.n_synthetic, False))]
    all_matchers = matchers()
    warm_up(all_matchers, load_score(sample_scores[0]),
            performance_note_array(read_midi(items[0].performance).notes))

    print("synthetic ...", flush=True)
    synth = bench_synthetic(sample_scores, args.seed)
    synth_table = (synth.groupby(["matcher", "level"], sort=False)
                   .agg(F1_mean=("f1", "mean"), F1_min=("f1", "min"), failed=("failed", "sum"),
                        median_s=("seconds", "median")).reset_index())

    print("real ...", flush=True)
    sample = [items[i] for i in sorted(rng.choice(len(items), args.n_real, False))]
    renderings = [it for it in items if "_Score_" in it.name][:20]
    real = bench_real(sample + [it for it in renderings if it not in sample], all_matchers)
    performers = real[~real["segment"].str.contains("_Score")]  # Score2: another rendering
    real_table = performers.groupby("matcher", sort=False).agg(
        n=("match_rate", "size"), rate_median=("match_rate", "median"),
        rate_min=("match_rate", "min"), failed=("match_rate", lambda r: int(r.isna().sum())),
        median_s=("seconds", "median"), total_s=("seconds", "sum")).reset_index()
    render_table = real[real["score_rendering"]].groupby("matcher", sort=False).agg(
        n=("match_rate", "size"), rate_mean=("match_rate", "mean"),
        rate_min=("match_rate", "min")).reset_index()
    same = real.pivot(index="segment", columns="matcher", values="match_rate")
    identical = int((same["dualdtw (ours: SetDTW onsets)"]
                     == same["dualdtw (stock parangonar)"]).sum())

    print("full run ...", flush=True)
    full_items = source_items("percepiano", manifest, raw / "percepiano")
    full = align_items(full_items, AlignConfig.from_params(params), n_jobs=int(params["n_jobs"]),
                       progress=False)
    n_notes = len(full.notes)

    print("asap ...", flush=True)
    asap = bench_asap(raw / "maestro", args.n_asap, args.asap_max_notes)
    work = asap["score_notes"] * asap["performance_notes"]
    b, a = np.polyfit(work, asap["seconds"], 1)  # seconds = a + b * score notes * perf notes
    mm = pd.read_csv(raw / "maestro" / "manifest.csv")
    counts = dict(zip(mm["file"], mm["n_notes"]))
    all_items = source_items("maestro", mm, raw / "maestro")
    perf_notes = lambda it: counts[Path(it.performance).relative_to(raw / "maestro").as_posix()]
    estimate = lambda its: sum(a + b * counts[it.score_file] * perf_notes(it)
                               for it in its if it.score and it.skip is None)
    limits = params["sources"]["maestro"] or {}
    limited = limit_items(all_items, counts, limits.get("max_score_notes"), limits.get("max_items"))
    n_limited = sum(it.skip is None and it.score is not None for it in limited)

    lines = [
        "# Alignment benchmarks", "",
        f"Written by `benchmarks/align_bench.py` on {machine()}. Other jobs may have shared the "
        "2 cores, so times are upper bounds.", "",
        "## 1. Known answers: synthetic performances of score renderings", "",
        f"{args.n_synthetic} PercePiano score renderings (seed {args.seed}), each turned into a "
        "performance per level: tempo = 0.6 s/beat x U(0.7, 1.4) with a log-tempo random walk "
        "(sd per beat), Gaussian onset jitter, a share of notes dropped and of extra notes (a "
        "score pitch +-1-2 semitones, at a random time) added. F1 of the matched (score, "
        "performance) pairs against the truth; grace notes left out.", "",
        "| level | deleted | inserted | log-tempo sd/beat | jitter (s) |", "|---|---|---|---|---|",
        *[f"| {k} | {v[0]} | {v[1]} | {v[2]} | {v[3]} |" for k, v in LEVELS.items()], "",
        markdown_table(synth_table), "",
        "## 2. Real PercePiano segments", "",
        f"{len(performers['segment'].unique())} performer segments (seeded sample): match rate = "
        "matched / score notes.", "", markdown_table(real_table), "",
        "`Score` renderings (the score MIDI played back, so every score note should match):", "",
        markdown_table(render_table), "",
        f"Our `dualdtw` (onset DTW through parangonar's numba `weighted_dtw_forward_and_backward`"
        f" instead of the pure-Python `DTWSL`) gives the same match rate as the stock matcher on "
        f"{identical} of {len(same)} segments.", "",
        "## 3. Throughput: all PercePiano segments", "",
        f"`align_items` with the `align` params (n_jobs={params['n_jobs']}, matchers "
        f"{params['matchers']}): {len(full_items)} segments, {n_notes} notes in "
        f"{full.seconds:.1f} s = **{len(full_items) / full.seconds:.1f} segments/s** "
        f"({n_notes / full.seconds:.0f} notes/s), score parsing included. Status: "
        f"{full.alignments['status'].value_counts().to_dict()}.", "",
        "## 4. ASAP/MAESTRO cost", "",
        f"`dualdtw` on {len(asap)} performances spread over the score sizes up to "
        f"{args.asap_max_notes} notes (one process):", "", markdown_table(asap, ".2f"), "",
        f"Fit: seconds = {a:.2f} + {b:.2e} x score notes x performance notes. All "
        f"{sum(it.score is not None for it in all_items)} performances: about "
        f"**{estimate(all_items) / 60:.0f} CPU-min** (before any fallback matcher runs; "
        f"`automatic` on a long piece costs minutes more); the default limit "
        f"(`align.sources.maestro`: {limits}) keeps {n_limited}: about "
        f"{estimate(limited) / 60:.1f} CPU-min.", "",
        *last_maestro_run(ROOT / "data" / "align_timing" / "maestro.csv"),
    ]
    args.out.write_text("\n".join(lines))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
