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
    ("evaluate", ("confidence",), 95, r"evaluate\.confidence: Input should be less than 1 \(got 95\)"),    ("fanout", ("engine",), "ray", r"fanout\.engine: Input should be 'local' or 'dask' \(got 'ray'\)"),
    ("fanout", ("workers",), 2, r"fanout\.workers: unknown key"),
    ("ingest", ("validation", "min_notes"), 0, r"ingest\.validation\.min_notes: Input should be greater than or equal to 1"),
    ("ingest", ("validation", "max_duration_sec"), "4h", r"ingest\.validation\.max_duration_sec: Input should be a valid number"),
    ("ingest", ("sources", "percepiano", "download", "archive"), "asap2",
     r"ingest\.sources\.percepiano\.download\.archive: Input should be 'percepiano', 'asap', 'maestro_v3' or 'giantmidi'"),
    ("ingest", ("sources", "musicnet"), {"dir": "musicnet", "download": {"archive": "asap", "sha256": None}},
     r"ingest\.sources\.musicnet\.\[key\]: Input should be 'percepiano', 'maestro' or 'giantmidi'"),
    ("ingest", ("sources", "maestro", "download", "sha256"), "abc", r"ingest\.sources\.maestro\.download\.sha256: String should match pattern"),
    ("ingest", ("mirrors",), "../shared/data", r"ingest\.mirrors: unknown key"),
    ("features", ("n_jobs",), 0, r"features\.n_jobs: Input should be greater than or equal to 1 \(got 0\)"),
    ("features", ("chord_window_sec",), "30ms", r"features\.chord_window_sec: Input should be a valid number"),
    ("features", ("chord_window",), 0.03, r"features\.chord_window: unknown key"),
    ("render", ("sample_rate",), 0, r"render\.sample_rate: Input should be greater than 0 \(got 0\)"),
    ("render", ("sample_rate",), 24000.5, r"render\.sample_rate: Input should be a valid integer"),
    ("render", ("normalize",), "loudness", r"render\.normalize: Input should be 'rms', 'soundfont', 'peak' or 'none' \(got 'loudness'\)"),
    ("render", ("controls",), [64, 128], r"render\.controls\.1: Input should be less than or equal to 127"),
    ("render", ("soundfonts",), [], r"render\.soundfonts: List should have at least 1 item"),
    ("render", ("maestro", "hop_sec"), 0.0, r"render\.maestro\.hop_sec: Input should be greater than 0"),
    ("render", ("maestro", "max_windows"), 2, r"render\.maestro\.max_windows: unknown key"),
    ("render", ("reverb",), "off", r"render\.reverb: Input should be a valid boolean \(got 'off'\)"),
    ("encode_audio", ("encoder",), "clap", r"encode_audio\.encoder: Input should be 'spectral' or 'mert' \(got 'clap'\)"),
    ("encode_audio", ("sources",), ["percepiano", "giantmidi"], r"encode_audio\.sources\.1: Input should be 'percepiano' or 'maestro'"),
    ("encode_audio", ("spectral", "n_mels"), 0, r"encode_audio\.spectral\.n_mels: Input should be greater than or equal to 1"),
    ("encode_audio", ("spectral", "fmax"), 20.0, r"encode_audio\.spectral: Value error, fmax must exceed fmin"),
    ("encode_audio", ("spectral", "max_clipped_fraction"), 1.5, r"encode_audio\.spectral\.max_clipped_fraction: Input should be less than or equal to 1"),
    ("encode_audio", ("mert", "dtype"), "float16", r"encode_audio\.mert\.dtype: Input should be 'float32' or 'bfloat16'"),
    ("encode_audio", ("mert", "device"), "tpu", r"encode_audio\.mert\.device: String should match pattern"),
    ("encode_audio", ("mert", "layers"), "some", r"encode_audio\.mert\.layers\.literal\['all'\]: Input should be 'all'"),
    ("encode_audio", ("spectral", "n_ffts"), 2048, r"encode_audio\.spectral\.n_ffts: unknown key"),
    ("degrade", ("n_jobs",), 0, r"degrade\.n_jobs: Input should be greater than or equal to 1"),
    ("degrade", ("families", "timing", "jitter_ms"), [20, 50], r"degrade\.families\.timing\.jitter_ms: List should have at least 3 items"),
    ("degrade", ("families", "accuracy", "deletion_rate"), [0.1, 0.2, 1.5], r"degrade\.families\.accuracy\.deletion_rate\.2: Input should be less than or equal to 1"),
    ("degrade", ("families", "articulation", "shorten_factor"), [0.7, 0.0, 0.3], r"degrade\.families\.articulation\.shorten_factor\.1: Input should be greater than 0"),
    ("degrade", ("families", "reverb"), {"wet": [0.1, 0.2, 0.3]}, r"degrade\.families\.reverb: unknown key"),
    ("degrade", ("audio", "clip_percent"), [2, 10, 130], r"degrade\.audio\.clip_percent\.2: Input should be less than or equal to 100"),
    ("degrade", ("sources", "maestro", "window_sec"), -1.0, r"degrade\.sources\.maestro\.window_sec: Input should be greater than 0"),
    ("degrade", ("write_midi",), "yes", r"degrade\.write_midi: Input should be a valid boolean"),
    ("tokenize", ("tokenizer", "kind"), "octuple", r"tokenize\.tokenizer\.kind: Input should be 'cpword' or 'remi' \(got 'octuple'\)"),
    ("tokenize", ("tokenizer", "beat_res"), {"0-4": 16, "4..12": 4}, r"tokenize\.tokenizer\.beat_res\.4\.\.12\.\[key\]: String should match pattern"),
    ("tokenize", ("giantmidi_roles",), ["performance", "score"], r"tokenize\.giantmidi_roles\.1: Input should be 'performance' or 'transcription'"),
    ("tokenize", ("exclude_works",), ["D[ ._*960"], r"tokenize\.exclude_works: Value error, 'D\[ \._\*960' is not a regular expression"),
    ("tokenize", ("heldout_fraction",), 0.0, r"tokenize\.heldout_fraction: Input should be greater than 0"),
    ("tokenize", ("min_len",), 1024, r"tokenize: Value error, min_len must not exceed max_len"),
    ("tokenize", ("max_length",), 512, r"tokenize\.max_length: unknown key"),
    ("pretrain_midi", ("model", "n_heads"), 3, r"pretrain_midi\.model: Value error, d_model 64 must divide by n_heads 3"),
    ("pretrain_midi", ("model", "position"), "rope", r"pretrain_midi\.model\.position: Input should be 'alibi' or 'learned'"),
    ("pretrain_midi", ("train", "mask_rate"), 1.5, r"pretrain_midi\.train\.mask_rate: Input should be less than 1"),
    ("pretrain_midi", ("augment", "tempo"), [1.2, 0.8], r"pretrain_midi\.augment: Value error, tempo: low 1\.2 exceeds high 0\.8"),
    ("pretrain_midi", ("device",), "gpu", r"pretrain_midi\.device: String should match pattern"),
    ("pretrain_midi", ("profile",), "gpu_large", r"pretrain_midi: Value error, profile 'gpu_large' is not one of \['cpu_long', 'gpu', 'gpu_small'\]"),
    ("pretrain_midi", ("profiles", "gpu", "train", "step"), 10, r"pretrain_midi\.profiles\.gpu\.train\.step: unknown key"),
    ("pretrain_midi", ("profiles", "gpu", "train", "batch_size"), 0, r"pretrain_midi\.profiles\.gpu\.train\.batch_size: Input should be greater than or equal to 1"),
    ("finetune_midi", ("splits",), ["piece", "pieces"], r"finetune_midi\.splits\.1: Input should be 'piece', 'performer', 'work' or 'lopo'"),
    ("finetune_midi", ("models", "midibert_scratch"), {"pretrained": "no"}, r"finetune_midi\.models\.midibert_scratch\.pretrained: Input should be a valid boolean"),
    ("finetune_midi", ("train", "ridge_alphas"), [], r"finetune_midi\.train\.ridge_alphas: List should have at least 1 item"),
    ("finetune_midi", ("n_seeds",), 0, r"finetune_midi\.n_seeds: Input should be greater than or equal to 1"),
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
    from pianoeval.audio.encoders import ENCODERS, MERT_DEFAULTS, SPECTRAL_DEFAULTS
    from pianoeval.audio.render import RenderConfig
    from pianoeval.data.download import UPSTREAM
    from pianoeval.degrade.tiers import MIDI_FAMILIES
    from pianoeval.features.sets import FEATURE_SETS
    from pianoeval.tokens.tokenizer import KINDS

    assert config.MATCHERS == MATCHERS and config.FEATURE_SETS == FEATURE_SETS
    assert config.ARCHIVES == tuple(UPSTREAM) and config.AUDIO_ENCODERS == tuple(ENCODERS)
    assert config.MIDI_FAMILIES == MIDI_FAMILIES and config.TOKENIZER_KINDS == tuple(KINDS)
    assert tuple(config.Families.model_fields) == MIDI_FAMILIES
    assert set(config.Spectral.model_fields) == set(SPECTRAL_DEFAULTS)  # every encoder parameter
    assert set(config.Mert.model_fields) == set(MERT_DEFAULTS)
    for mode in config.NORMALIZE:  # every choice is one RenderConfig accepts, and only those
        RenderConfig.from_params({"normalize": mode})
    with pytest.raises(ValueError, match="render.normalize must be rms, soundfont, peak or none"):
        RenderConfig.from_params({"normalize": "loudness"})


def test_the_selected_profile_is_merged_over_the_section():
    values = _with("pretrain_midi", ("profile",), "gpu")
    cfg = parse_section("pretrain_midi", values)
    assert cfg.device == "cuda" and cfg.model.d_model == 768 and cfg.train.steps == 50000
    assert cfg.train.mask_rate == PARAMS["pretrain_midi"]["train"]["mask_rate"]  # not overridden
    assert parse_section("pretrain_midi", PARAMS["pretrain_midi"]).model.d_model == 64
