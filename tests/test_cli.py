from pathlib import Path

import pytest

from pianoeval.cli import BEGIN, END, main, render_readme

ROOT = Path(__file__).resolve().parents[1]


def test_render_readme_replaces_only_the_marked_section():
    readme = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert render_readme(readme, "| new |") == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    with pytest.raises(ValueError, match="no <!-- results:begin -->"):
        render_readme("no markers", "| t |")


def test_committed_readme_table_is_generated_from_committed_metrics(monkeypatch):
    """The README's results table is never typed by hand: it equals what metrics/ generates."""
    monkeypatch.chdir(ROOT)
    assert main(["readme", "--check"]) == 0
