"""The typed params loader: every typed section of params.yaml parses; a bad key or value is
refused before any work, with a message naming it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pianoeval.config import SECTIONS, ConfigError, load_config, parse_section

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_typed_section_of_params_yaml_parses_and_keeps_its_values(section):
    assert parse_section(section, PARAMS[section]).model_dump() == PARAMS[section]


def _with(section: str, path: tuple, value) -> dict:
    values = yaml.safe_load(yaml.safe_dump(PARAMS[section]))  # a deep copy
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return values


@pytest.mark.parametrize("section, path, value, message", [
    ("splits", ("n_folds",), 0, r"splits\.n_folds: Input should be greater than or equal to 2 \(got 0\)"),
    ("splits", ("seeds",), ["abc"], r"splits\.seeds\.0: Input should be a valid integer \(got 'abc'\)"),
    ("splits", ("seeds",), [1, 1], r"splits\.seeds: Value error, seeds repeat"),
    ("splits", ("test_fraction",), 1.5, r"splits\.test_fraction: Input should be less than 1 \(got 1\.5\)"),
    ("splits", ("n_folds",), 4.5, r"splits\.n_folds: Input should be a valid integer"),
    ("splits", ("n_fold",), 4, r"splits\.n_fold: unknown key"),
    ("baselines", ("ridge", "alphas"), [], r"baselines\.ridge\.alphas: List should have at least 1 item"),
    ("baselines", ("ridge", "alphas"), [1.0, -1.0], r"baselines\.ridge\.alphas\.1: Input should be greater than 0"),
    ("baselines", ("models", "ridge"), ["lasso", "all"], r"baselines\.models: .*estimator 'lasso' is not one of"),
    ("baselines", ("models", "ridge"), ["ridge", "most"], r"baselines\.models: .*feature set 'most' is not one of"),
    ("baselines", ("splits",), ["piece", "pieces"], r"baselines\.splits\.1: Input should be 'piece', 'performer', 'work' or 'lopo'"),
    ("labels", ("merge_score2",), "no", r"labels\.merge_score2: Input should be a valid boolean \(got 'no'\)"),
    ("labels", ("tolerance",), -1.0, r"labels\.tolerance: Input should be greater than or equal to 0"),
    ("evaluate", ("comparisons", "ablations"), ["fusion_gatd"],
     r"evaluate: Value error, comparisons\.ablations names \['fusion_gatd'\], which evaluate\.models does not score"),
    ("evaluate", ("protocols",), ["piece_cv", "lopo"], r"evaluate\.protocols\.1: Input should be 'piece_cv'"),
    ("evaluate", ("plot_protocol",), "piece_test", r"evaluate\.plot_protocol: Input should be 'piece_cv', 'performer_cv', 'work_cv' or 'lopo_cv'"),
    ("align", ("matchers",), [], r"align\.matchers: List should have at least 1 item"),
    ("align", ("matchers",), ["dualdtw", "nosuchmatcher"], r"align\.matchers\.1: Input should be 'dualdtw' or 'automatic'"),
    ("align", ("min_match_rate",), 1.5, r"align\.min_match_rate: Input should be less than or equal to 1"),
    ("release", ("variants",), {"with_score": "ridge"}, r"release\.variants: Dictionary should have at least 2 items"),
    ("release", ("coverage",), 90, r"release\.coverage: Input should be less than 1 \(got 90\)"),
    ("evaluate", ("confidence",), 95, r"evaluate\.confidence: Input should be less than 1 \(got 95\)"),
])
def test_a_bad_value_or_unknown_key_is_refused_naming_the_key(section, path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_section(section, _with(section, path, value))


def test_a_missing_key_is_refused_naming_it():
    values = dict(PARAMS["splits"])
    del values["min_overlap"]
    with pytest.raises(ConfigError, match=r"splits\.min_overlap: missing"):
        parse_section("splits", values)


def test_load_config_names_the_file_and_ends_the_run_without_a_traceback(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"splits": _with("splits", ("n_folds",), 0)}))
    with pytest.raises(SystemExit, match=rf"{path}: splits\.n_folds"):
        load_config("splits", path)
    run = subprocess.run([sys.executable, str(ROOT / "stages/splits.py")], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "params.yaml: splits.n_folds: Input should be greater than or equal to 2" in run.stderr
    assert not (tmp_path / "data").exists()


def test_the_choices_named_in_config_are_those_of_their_modules():
    from pianoeval import config
    from pianoeval.align.match import MATCHERS
    from pianoeval.features.sets import FEATURE_SETS

    assert config.MATCHERS == MATCHERS and config.FEATURE_SETS == FEATURE_SETS
