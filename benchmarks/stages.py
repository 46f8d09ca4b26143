"""Where a cold `make repro` spends its time: wall and CPU seconds per DVC stage.

Clones this repository into a fresh folder beside a link to ../shared (so `ingest.mirror`
resolves as in CI), times `make setup`, then runs every stage with `dvc repro -s <stage>` in
DVC's own order and times each: wall seconds, and CPU seconds of the stage and every process it
waited for (getrusage of the children). Each finished stage is appended to a JSON-lines log, so
an interrupted run resumes with `--log` and `--resume`, and `--from-log` only rewrites the table.
Writes benchmarks/stages.md.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import fresh_clone, machine  # benchmarks/run.py

ROOT = Path(__file__).resolve().parents[1]


def timed_run(cmd: list[str], cwd: Path, log_file: Path, env: dict | None = None) -> dict:
    """Run ``cmd``; its wall and CPU seconds (user + system of it and its waited-for children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log_file.open("a") as log:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": rc}


def stage_order(clone: Path, env: dict) -> list[str]:
    """Every stage in the order `dvc repro --force` would run them."""
    dry = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=clone, env=env, check=True,
                         capture_output=True, text=True).stdout
    return re.findall(r"Running stage '([^']+)'", dry)


def measure(clone: Path, log_path: Path, resume: bool, only: list[str] | None) -> None:
    done = {r["stage"] for r in read_log(log_path)} if resume else set()
    if not resume:
        log_path.write_text("")
    out_log = log_path.with_suffix(".out")
    if "make setup" not in done:
        append(log_path, {"stage": "make setup", **timed_run(["make", "setup"], clone, out_log)})
    env = {**os.environ, "PATH": f"{clone / '.venv/bin'}:{os.environ['PATH']}"}
    stages = [s for s in stage_order(clone, env) if only is None or s in only]
    if "plan" not in done:
        append(log_path, {"stage": "plan", "stages": stages})
    for i, stage in enumerate(stages, 1):
        if stage in done:
            continue
        print(f"[{i}/{len(stages)}] {stage} ...", flush=True)
        offset = out_log.stat().st_size if out_log.exists() else 0
        result = timed_run(["dvc", "repro", "-s", stage], clone, out_log, env)
        with out_log.open() as log:  # outputs in git and inputs as locked: DVC does not run it
            log.seek(offset)
            result["skipped"] = f"Stage '{stage}' didn't change" in log.read()
        append(log_path, {"stage": stage, **result})
        print(f"    {result['wall_s']:.0f} s wall, {result['cpu_s']:.0f} s CPU, rc {result['rc']}",
              flush=True)
        if result["rc"] != 0:
            raise SystemExit(f"stage {stage} failed (rc {result['rc']}): see {out_log}")
    if only is None:  # with only some stages built, `dvc repro` would run the others
        noop = [timed_run(["dvc", "repro"], clone, out_log, env)["wall_s"] for _ in range(3)]
        append(log_path, {"stage": "no-op dvc repro (median of 3)",
                          "wall_s": statistics.median(noop), "cpu_s": None, "rc": 0})


def append(log_path: Path, record: dict) -> None:
    with log_path.open("a") as log:
        log.write(json.dumps(record) + "\n")


def read_log(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def timed_stages(records: list[dict]) -> tuple[list[str], list[dict]]:
    """(the planned stages, the records of those timed so far)."""
    plan = next((r["stages"] for r in records if r["stage"] == "plan"), [])
    return plan, [r for r in records if r["stage"] in plan]


def summary(records: list[dict], machine_line: str) -> dict:
    """benchmarks/stages.json, which the README's runtime line is generated from."""
    plan, stages = timed_stages(records)
    return {"machine": machine_line, "planned": len(plan), "timed": len(stages),
            "complete": len(stages) == len(plan) > 0,
            "wall_s": round(sum(r["wall_s"] for r in stages), 1),
            "cpu_s": round(sum(r["cpu_s"] for r in stages), 1)}


def table(records: list[dict], machine_line: str) -> str:
    """The markdown page: one row per stage, the DAG total and each stage's share of it; with
    stages still to time (an interrupted run), says which."""
    plan, stages = timed_stages(records)
    records = [r for r in records if r["stage"] != "plan"]
    timed = {r["stage"] for r in stages}
    missing = [s for s in plan if s not in timed]
    total_wall = sum(r["wall_s"] for r in stages)
    total_cpu = sum(r["cpu_s"] for r in stages)
    rows = [f"| {r['stage']}{' (up to date: outputs in git)' if r.get('skipped') else ''} | "
            f"{r['wall_s']:.0f} | {r['cpu_s']:.0f} | {100 * r['wall_s'] / total_wall:.1f}% |"
            for r in sorted(stages, key=lambda r: -r["wall_s"])]
    extra = [f"| {r['stage']} | {r['wall_s']:.1f} | "
             f"{'' if r['cpu_s'] is None else round(r['cpu_s'])} | |"
             for r in records if r not in stages]
    return "\n".join([
        "# Cold `make repro`, stage by stage", "",
        f"Machine: {machine_line}. Measured {time.strftime('%Y-%m-%d')} by "
        "`benchmarks/stages.py` on a fresh clone (empty DVC cache, Debian packages installed, "
        "package caches warm); each stage run alone with `dvc repro -s`, in DVC's order. CPU "
        "seconds count the stage's worker processes too, so CPU > wall means it used both cores.",
        "", (f"**Not a full run: {len(stages)} of {len(plan)} stages timed so far** "
             f"({total_wall / 60:.1f} min wall, {total_cpu / 60:.1f} CPU-min); not yet timed: "
             f"{', '.join(missing)}." if missing else
             f"**DAG total: {total_wall / 60:.1f} min wall, {total_cpu / 60:.1f} CPU-min, "
             f"{len(stages)} stages.**"), "",
        "| stage | wall s | CPU s | share of wall |", "|---|---|---|---|", *rows, *extra, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "stages.md")
    parser.add_argument("--log", type=Path, default=ROOT / "benchmarks" / "stages.jsonl")
    parser.add_argument("--clone", type=Path, help="use (or resume in) this clone")
    parser.add_argument("--resume", action="store_true", help="skip stages already in --log")
    parser.add_argument("--stages", nargs="+", help="time only these stages (upstream present)")
    parser.add_argument("--from-log", action="store_true", help="only rewrite --out from --log")
    args = parser.parse_args()
    if not args.from_log:
        clone = args.clone or fresh_clone(Path(tempfile.mkdtemp(prefix="pianoeval_stages_")))
        print(f"timing stages in {clone}", flush=True)
        measure(clone, args.log, args.resume, args.stages)
    records = read_log(args.log)
    args.out.write_text(table(records, machine()))
    args.out.with_suffix(".json").write_text(json.dumps(summary(records, machine()), indent=2)
                                             + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
