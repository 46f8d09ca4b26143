"""`make bench`: pipeline timings on this machine -> benchmarks/results.md (and the figures the
README's runtime line is generated from, benchmarks/results.json).

`make test` on a clean clone (what CI runs), no-op `dvc repro`, and ingest and feature
throughput next to the raw symusic parse rate of the same files; the cold `make repro` is timed
stage by stage by benchmarks/stages.py.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import symusic

from pianoeval.config import load_config
from pianoeval.data.ingest import ingest_tree
from pianoeval.features.inputs import build_items
from pianoeval.features.symbolic import extract_features, feature_rows
from pianoeval.params import load_params, mirror_folder

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"symusic {symusic.__version__}")


def timed(cmd, cwd, env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fresh_clone(parent: Path) -> Path:
    """A clone of this repository's HEAD in ``parent``/main, beside a link to ../shared (so
    ``ingest.mirror`` resolves as in CI)."""
    clone = parent / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (parent / "shared").symlink_to(ROOT.parent / "shared")
    return clone


def make_test_seconds() -> float:
    """Wall seconds of `make test` (set-up, then pytest) on a fresh clone, as CI runs it."""
    with tempfile.TemporaryDirectory(prefix="pianoeval_make_test_") as tmp:
        clone = fresh_clone(Path(tmp))
        start = time.perf_counter()
        subprocess.run(["make", "test"], cwd=clone, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def parse_rate(paths: list[Path]) -> tuple[float, float]:
    """Raw symusic parse of the same files: (files/s, notes/s)."""
    start = time.perf_counter()
    notes = sum(symusic.Score(str(p), ttype="second").note_num() for p in paths)
    seconds = time.perf_counter() - start
    return len(paths) / seconds, notes / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    args = parser.parse_args()
    ingest = load_params("ingest", ROOT / "params.yaml")
    mirror = mirror_folder(ROOT / ingest["mirror"])  # an absolute ingest.mirror stays as it is
    rows = [("cold `make repro`", "stage by stage in [stages.md](stages.md) (`benchmarks/stages.py`)")]
    make_test = make_test_seconds()
    rows.append(("`make test` on a fresh clone (set-up and pytest, as CI runs it)",
                 f"{make_test:.0f} s"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    noop = statistics.median(timed(["dvc", "repro"], ROOT, env) for _ in range(3))
    rows.append(("no-op `dvc repro` (median of 3)", f"{noop:.2f} s"))

    src = mirror / ingest["sources"]["percepiano"]["dir"]
    midi = sorted(p for p in src.rglob("*.mid"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = ingest_tree(src, Path(tmp), load_config("ingest").validation)
        seconds = time.perf_counter() - start
    notes = sum(r["n_notes"] for r in manifest)
    files_s, notes_s = parse_rate(midi)
    rows.append((f"ingest percepiano ({len(manifest)} files, {len(midi)} MIDI: validate, sha256, copy)",
                 f"{len(manifest) / seconds:.0f} files/s, {notes / seconds:,.0f} notes/s"))
    rows.append(("raw symusic parse of the same MIDI files",
                 f"{files_s:.0f} files/s, {notes_s:,.0f} notes/s"))

    raw = ROOT / "data" / "raw" / "percepiano"
    items = build_items(pd.read_csv(raw / "manifest.csv"), raw)
    params = load_params("features", ROOT / "params.yaml")
    start = time.perf_counter()
    feature_rows([])  # loads the compiled kernel (numba's cache): once per process
    rows.append(("features: loading the compiled kernel, once per process",
                 f"{time.perf_counter() - start:.2f} s"))
    files_s, notes_s = parse_rate([p for _, p, _ in items])
    for n_jobs in sorted({1, params["n_jobs"]}):
        start = time.perf_counter()
        frame, _ = extract_features(items, n_jobs=n_jobs, progress=False,
                                    chord_window_sec=params["chord_window_sec"])
        seconds = time.perf_counter() - start
        rate = frame["n_notes"].sum() / seconds
        rows.append((f"features ({len(frame)} segments + scores, n_jobs={n_jobs})",
                     f"{len(frame) / seconds:.0f} segments/s, {rate:,.0f} notes/s "
                     f"({rate / notes_s:.0%} of the raw parse rate below)"))
    rows.append(("raw symusic parse of the same performances (1 process)",
                 f"{files_s:.0f} files/s, {notes_s:,.0f} notes/s"))

    table = "\n".join(f"| {what} | {value} |" for what, value in rows)
    args.out.write_text(
        f"# Benchmarks\n\nMachine: {machine()}. Measured {time.strftime('%Y-%m-%d')} by "
        f"`make bench` (`benchmarks/run.py`); wall-clock seconds, one run unless stated, files "
        f"in the page cache.\n\n| what | result |\n|---|---|\n{table}\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"machine": machine(), "measured": time.strftime("%Y-%m-%d"),
         "make_test_s": round(make_test, 1), "noop_repro_s": round(noop, 2)}, indent=2) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
