"""The `pianoeval` command: small helpers around the DVC pipeline."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
ABLATION_BEGIN, ABLATION_END = "<!-- ablation:begin -->", "<!-- ablation:end -->"


def render_readme(readme: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """Replace the text between the ``begin`` and ``end`` markers of ``readme`` with ``table``."""
    if begin not in readme or end not in readme:
        raise ValueError(f"README has no {begin} ... {end} section to fill")
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table.strip()}\n{end}{tail}"


def readme_command(args: argparse.Namespace) -> int:
    from pianoeval.evaluate.report import results_markdown

    table = results_markdown(json.loads(Path(args.metrics).read_text()))
    readme = Path(args.readme)
    new = render_readme(readme.read_text(), table)
    ablation = Path(args.ablation)
    if ablation.exists():  # the ablation stage's tables, without their title
        body = ablation.read_text().split("\n", 1)[1]
        new = render_readme(new, body.replace("\n## ", "\n#### "), ABLATION_BEGIN, ABLATION_END)
    if args.check:
        if new != readme.read_text():
            print(f"{readme}: results table is stale; run `make repro`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pianoeval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    readme = sub.add_parser("readme", help="regenerate README's results table from metrics/")
    readme.add_argument("--metrics", default="metrics/eval.json")
    readme.add_argument("--readme", default="README.md")
    readme.add_argument("--ablation", default="metrics/ablation.md")
    readme.add_argument("--check", action="store_true", help="fail if the table is out of date")
    readme.set_defaults(func=readme_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
