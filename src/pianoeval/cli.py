"""The `pianoeval` command: small helpers around the DVC pipeline."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"
RUNTIMES_BEGIN, RUNTIMES_END = "<!-- runtimes:begin -->", "<!-- runtimes:end -->"
RELEASE = Path(__file__).resolve().parents[2] / "models" / "release"


def render_readme(readme: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """Replace the text between the ``begin`` and ``end`` markers of ``readme`` with ``table``."""
    if begin not in readme or end not in readme:
        raise ValueError(f"README has no {begin} ... {end} section to fill")
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table.strip()}\n{end}{tail}"


def runtimes_markdown(stages: dict, bench: dict | None) -> str:
    """The README's runtime line, from benchmarks/stages.json (the cold ``make repro``, stage by
    stage) and benchmarks/results.json (``make bench``; None: not measured yet)."""
    repro = (f"a cold `make repro` {stages['wall_s'] / 60:.0f} min" if stages["complete"] else
             f"a cold `make repro` is not fully timed yet: {stages['timed']} of "
             f"{stages['planned']} stages took {stages['wall_s'] / 60:.0f} min")
    if bench is None:
        return (f"On {stages['machine']}: {repro} ([benchmarks/stages.md](benchmarks/stages.md)); "
                "`make test` and a no-op `dvc repro` are not measured yet (`make bench`).")
    return (f"On {bench['machine']} (`make bench`): `make test` took "
            f"{bench['make_test_s'] / 60:.1f} min on a clean clone; {repro} "
            f"([benchmarks/stages.md](benchmarks/stages.md)); a no-op `dvc repro` "
            f"{bench['noop_repro_s']:.1f} s.")


def readme_command(args: argparse.Namespace) -> int:
    from pianoeval.evaluate.headline import headline_markdown
    from pianoeval.params import load_params

    evaluate = load_params("evaluate", args.params)
    table = headline_markdown(json.loads(Path(args.metrics).read_text()),
                              json.loads(Path(args.comparisons).read_text()),
                              evaluate["default_model"], evaluate["protocols"])
    readme = Path(args.readme)
    new = render_readme(readme.read_text(), table)
    if RUNTIMES_BEGIN in new:
        bench = Path(args.bench)
        runtimes = runtimes_markdown(json.loads(Path(args.stages).read_text()),
                                     json.loads(bench.read_text()) if bench.exists() else None)
        new = render_readme(new, runtimes, RUNTIMES_BEGIN, RUNTIMES_END)
    if args.check:
        if new != readme.read_text():
            print(f"{readme}: a generated block (headline table, runtimes) is stale; run "
                  "`make repro` (or `pianoeval readme`)", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


def download_command(args: argparse.Namespace) -> int:
    from pianoeval.data.download import download_into_mirror
    from pianoeval.params import load_params

    ingest = load_params("ingest", args.params)
    if args.source not in ingest["sources"]:
        print(f"unknown source {args.source!r} (ingest.sources: {sorted(ingest['sources'])})",
              file=sys.stderr)
        return 2
    try:
        folder = download_into_mirror(args.source, ingest["sources"][args.source],
                                      ingest["mirror"], Path(args.cache))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"pianoeval download: {exc}", file=sys.stderr)
        return 2
    print(folder)
    return 0


def _write_report(report: dict, out: Path, stem: str, fmt: str) -> list[Path]:
    from pianoeval.assess.html import render_html

    out.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("json", "both"):
        written.append(out / f"{stem}.json")
        written[-1].write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    if fmt in ("html", "both"):
        written.append(out / f"{stem}.html")
        written[-1].write_text(render_html(report))
    return written


def assess_command(args: argparse.Namespace) -> int:
    """Exit 0 with the report written, 2 with one line naming the bad input."""
    from pianoeval.assess.analysis import AssessError, Release, assess
    from pianoeval.assess.batch import assess_batch

    try:
        release = Release.load(args.model)
        if args.batch:
            summary = assess_batch(Path(args.batch), release, Path(args.out),
                                   args.transcription)
            print(f"{summary['n_ok']} assessed, {summary['n_failed']} failed -> "
                  f"{summary['csv']}")
            return 0
        if args.performance is None:
            raise AssessError("give a PERFORMANCE file or --batch DIR")
        report = assess(args.performance, release, args.score, args.transcription)
    except AssessError as exc:
        print(f"pianoeval assess: {exc}", file=sys.stderr)
        return 2
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for path in _write_report(report, Path(args.out), Path(args.performance).stem, args.format):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pianoeval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    readme = sub.add_parser("readme", help="regenerate README's headline table (from "
                            "metrics/) and runtimes (from benchmarks/)")
    readme.add_argument("--metrics", default="metrics/eval.json")
    readme.add_argument("--comparisons", default="metrics/comparisons.json")
    readme.add_argument("--params", default="params.yaml")
    readme.add_argument("--readme", default="README.md")
    readme.add_argument("--stages", default="benchmarks/stages.json")
    readme.add_argument("--bench", default="benchmarks/results.json")
    readme.add_argument("--check", action="store_true", help="fail if the table is out of date")
    readme.set_defaults(func=readme_command)
    download = sub.add_parser("download", help="fetch a source's pinned upstream archive into the "
                              "data mirror (sha256 from params.yaml; refused without one)")
    download.add_argument("source", help="an ingest.sources key: percepiano, maestro, giantmidi")
    download.add_argument("--params", default="params.yaml")
    download.add_argument("--cache", default="data/downloads", help="where archives are kept")
    download.set_defaults(func=download_command)
    assess = sub.add_parser("assess", help="judge one performance (MIDI or audio), optionally "
                            "against its score: 19 dimensions with intervals, per-bar feedback")
    assess.add_argument("performance", nargs="?", help="a .mid/.midi or .wav/.flac/.mp3/.ogg file")
    assess.add_argument("--score", help="its score: MusicXML, MIDI, MEI or kern")
    assess.add_argument("--out", default="assessments", help="folder for the reports")
    assess.add_argument("--format", choices=("json", "html", "both"), default="both")
    assess.add_argument("--batch", metavar="DIR", help="assess every MIDI/audio file in DIR "
                        "(no score) into one CSV row each")
    assess.add_argument("--transcription", choices=("accurate", "fast"), default="accurate",
                        help="audio: transkun (accurate) or basic-pitch (fast preview)")
    assess.add_argument("--model", default=str(RELEASE), help="the release model folder")
    assess.set_defaults(func=assess_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
