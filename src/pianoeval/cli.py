"""The `pianoeval` command: small helpers around the DVC pipeline."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def render_readme(readme: str, table: str) -> str:
    """Replace the text between the results markers of ``readme`` with ``table``."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README has no {BEGIN} ... {END} section to fill")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table.strip()}\n{END}{tail}"


def readme_command(args: argparse.Namespace) -> int:
    from pianoeval.evaluate.report import results_markdown

    table = results_markdown(json.loads(Path(args.metrics).read_text()))
    readme = Path(args.readme)
    new = render_readme(readme.read_text(), table)
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
    readme.add_argument("--check", action="store_true", help="fail if the table is out of date")
    readme.set_defaults(func=readme_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
