import json
import re
from pathlib import Path

import pytest

from pianoeval.cli import (BEGIN, END, RUNTIMES_BEGIN, RUNTIMES_END, main, render_readme,
                           runtimes_markdown)
from pianoeval.evaluate.headline import cell, headline_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_render_readme_replaces_only_the_marked_section():
    readme = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert render_readme(readme, "| new |") == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    with pytest.raises(ValueError, match="no <!-- headline:begin -->"):
        render_readme("no markers", "| t |")


def test_committed_readme_table_is_generated_from_committed_metrics(monkeypatch):
    """The README's headline table is never typed by hand: it equals what metrics/ generates."""
    monkeypatch.chdir(ROOT)
    assert main(["readme", "--check"]) == 0


def test_readme_check_fails_when_the_table_is_stale(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    stale = tmp_path / "README.md"
    stale.write_text((ROOT / "README.md").read_text().replace(END, "| typed by hand |\n" + END))
    assert main(["readme", "--check", "--readme", str(stale)]) == 1


def test_readme_is_a_front_door_of_at_most_200_lines_that_links_to_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200 and "](docs/" in text


def test_readme_has_no_result_numbers_outside_generated_blocks():
    """Every measured number in the README comes from a generated block."""
    text = (ROOT / "README.md").read_text()
    for begin, end in ((BEGIN, END), (RUNTIMES_BEGIN, RUNTIMES_END)):
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks
    text = re.sub(r"`[^`]*`", "", text)  # inline code
    text = re.sub(r"CC BY[-A-Z]* \d\.\d", "", text)  # licence versions
    assert not re.findall(r"\d+\.\d+|\d+ ?%", text)


def test_headline_marks_follow_the_paired_test():
    eval_dict = {
        "best": {"piece_cv": {"r2": 0.5, "r2_ci": [0.4, 0.6], "r2_by_seed": {"0": 0.45, "1": 0.55},
                              "r2_seed_mean": 0.5, "r2_seed_sd": 0.0707, "n_seeds": 2},
                 "lopo_cv": {"r2": 0.3, "r2_ci": [0.2, 0.4]}},
        "other": {"piece_cv": {"r2": 0.4, "r2_ci": [0.3, 0.5], "r2_by_seed": {"0": 0.4},
                               "r2_seed_mean": 0.4, "r2_seed_sd": None, "n_seeds": 1},
                  "lopo_cv": {"r2": 0.35, "r2_ci": [None, None]}},
    }
    comparisons = {"piece_cv": [{"a": "best", "b": "other", "difference": 0.1, "significant": True}],
                   "lopo_cv": [{"a": "best", "b": "other", "difference": -0.05, "significant": False}]}
    md = headline_markdown(eval_dict, comparisons, "best", ["piece_cv", "piece_test", "lopo_cv"])
    lines = md.strip().splitlines()
    assert lines[0] == "| model | piece_cv | lopo_cv |"  # no model has piece_test: no column
    assert lines[2].startswith("| **best** (default) | 0.500 ± 0.07 [0.40, 0.60] (2) |")
    assert lines[3] == "| other | 0.400 [0.30, 0.50] (1) ▲ | 0.350 ≈ |"
    assert cell(None) == "–"


def test_readme_claim_about_the_label_model_matches_the_metrics():
    """The README says the LabelModel does not beat majority vote on held-out works."""
    weak = json.loads((ROOT / "metrics" / "weak_labels.json").read_text())["holdout_works"]
    assert "does not earn its place over majority vote" in (ROOT / "README.md").read_text()
    assert weak["label_model"]["accuracy"] <= weak["majority_vote"]["accuracy"]


def test_runtime_line_says_when_the_cold_run_is_only_partly_timed(tmp_path, monkeypatch):
    bench = {"machine": "a 2-core box", "make_test_s": 290.0, "noop_repro_s": 4.06}
    partial = {"planned": 47, "timed": 16, "complete": False, "wall_s": 2666.7}
    line = runtimes_markdown(partial, bench)
    assert line.startswith("On a 2-core box (`make bench`): `make test` took 4.8 min")
    assert "not fully timed yet: 16 of 47 stages took 44 min" in line and "4.1 s" in line
    full = runtimes_markdown({**partial, "timed": 47, "complete": True, "wall_s": 3540}, bench)
    assert "a cold `make repro` 59 min (" in full and "not fully" not in full
    unmeasured = runtimes_markdown({**partial, "machine": "a 2-core box"}, None)
    assert "`make test` and a no-op `dvc repro` are not measured yet" in unmeasured

    monkeypatch.chdir(ROOT)
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    (tmp_path / "bench.json").write_text(json.dumps({**bench, "make_test_s": 999.0}))
    assert main(["readme", "--check", "--readme", str(readme),
                 "--bench", str(tmp_path / "bench.json")]) == 1  # another make test time
    assert main(["readme", "--readme", str(readme), "--bench", str(tmp_path / "bench.json")]) == 0
    assert "`make test` took 16.6 min" in readme.read_text()
