"""Typed, checked sections of params.yaml.

params.yaml holds every value and says what each key does; these models hold none of their
own (no defaults). :func:`load_config` reads one section and refuses, before any work, an
unknown or missing key, a value of the wrong type, out of range or not among the choices,
naming the key (``splits.n_folds``) and what is allowed. pydantic does the checking (strict:
no silent casts of "abc" or 1.5 to an int).

Sections not listed in ``SECTIONS`` are still read untyped with ``pianoeval.params.load_params``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from pianoeval.params import load_params, merge_params, resolve_profile

SPLIT_NAMES = ("piece", "performer", "work", "lopo")
ESTIMATORS = ("mean", "ridge")
# Choices named here, not imported: importing the modules that define them would make every stage
# that reads its params depend on their code. A test keeps each equal to its source.
MATCHERS = ("dualdtw", "automatic")  # pianoeval.align.match.MATCHERS
FEATURE_SETS = ("all", "performance_only")  # pianoeval.features.sets.FEATURE_SETS
ARCHIVES = ("percepiano", "asap", "maestro_v3", "giantmidi")  # pianoeval.data.download.UPSTREAM
NORMALIZE = ("rms", "soundfont", "peak", "none")  # pianoeval.audio.render.RenderConfig.normalize
AUDIO_ENCODERS = ("spectral", "mert")  # pianoeval.audio.encoders.ENCODERS
MIDI_FAMILIES = ("timing", "accuracy", "dynamics", "pedal", "articulation")  # degrade.tiers
TOKENIZER_KINDS = ("cpword", "remi")  # pianoeval.tokens.tokenizer.KINDS


class ConfigError(ValueError):
    """A params.yaml section that does not fit its model; the message names every bad key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Labels(Section):
    label_file: str
    ratings_file: str
    max_rating: float = Field(gt=0)
    likert_max: float = Field(gt=0)
    tolerance: float = Field(ge=0)
    merge_score2: bool


class Splits(Section):
    seeds: list[int] = Field(min_length=1)
    test_fraction: float = Field(gt=0, lt=1)
    n_folds: int = Field(ge=2)
    min_overlap: float = Field(gt=0, le=1)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds repeat")
        return seeds


class Ridge(Section):
    alphas: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    clip_to_training_range: bool


class Baselines(Section):
    models: dict[str, Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        min_length=1)
    splits: list[Literal[SPLIT_NAMES]] = Field(min_length=1)
    ridge: Ridge

    @field_validator("models")
    @classmethod
    def _known(cls, models: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, (estimator, features) in models.items():
            if estimator not in ESTIMATORS:
                raise ValueError(f"{name}: estimator {estimator!r} is not one of {ESTIMATORS}")
            if features not in FEATURE_SETS:
                raise ValueError(f"{name}: feature set {features!r} is not one of {FEATURE_SETS}")
        return models


class AlignLimits(Section):
    max_score_notes: int | None = Field(ge=1)
    max_items: int | None = Field(ge=1)


class Align(Section):
    n_jobs: int
    resume_dir: str | None = Field(min_length=1)
    matchers: list[Literal[MATCHERS]] = Field(min_length=1)
    min_match_rate: float = Field(ge=0, le=1)
    min_usable_rate: float = Field(ge=0, le=1)
    tempo_window_beats: float = Field(gt=0)
    velocity_local_beats: int = Field(ge=1)
    phrase_bars: int = Field(ge=1)
    sources: dict[Literal["percepiano", "maestro"], AlignLimits]


class Release(Section):
    variants: dict[Literal["with_score", "performance_only"], str] = Field(min_length=2)
    coverage: float = Field(gt=0, lt=1)
    score_min_note_f: float = Field(ge=0, le=1)
    practise_fraction: float = Field(gt=0, lt=1)
    max_passages: int = Field(ge=1)
    outlier_z: float = Field(gt=0)


PROTOCOLS = ("piece_cv", "performer_cv", "work_cv", "lopo_cv", "piece_test", "performer_test")


class Comparisons(Section):
    baseline: str
    ablations: list[str]
    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]]


class Evaluate(Section):
    models: list[str] = Field(min_length=1)
    baselines: list[str] = Field(min_length=1)
    single_modality: list[str]
    protocols: list[Literal[PROTOCOLS]] = Field(min_length=1)
    default_model: str
    comparisons: Comparisons
    n_resamples: int = Field(ge=100)
    confidence: float = Field(gt=0, lt=1)
    seed: int
    plot_protocol: Literal[tuple(p for p in PROTOCOLS if p.endswith("_cv"))]

    @model_validator(mode="after")
    def _models_are_scored(self) -> "Evaluate":
        named = {"baselines": self.baselines, "single_modality": self.single_modality,
                 "default_model": [self.default_model],
                 "comparisons.baseline": [self.comparisons.baseline],
                 "comparisons.ablations": self.comparisons.ablations,
                 "comparisons.pairs": [m for pair in self.comparisons.pairs for m in pair]}
        for key, models in named.items():
            unscored = [m for m in models if m not in self.models]
            if unscored:
                raise ValueError(f"{key} names {unscored}, which evaluate.models does not score")
        if self.plot_protocol not in self.protocols:
            raise ValueError(f"plot_protocol {self.plot_protocol!r} is not in protocols")
        return self


class Fanout(Section):
    """Where the fan-out stages (render, encode_audio, degrade) run their jobs."""
    engine: Literal["local", "dask"]
    address: str | None = Field(min_length=1)

    @model_validator(mode="after")
    def _dask_needs_address(self) -> "Fanout":
        if self.engine == "dask" and self.address is None:
            raise ValueError("engine dask needs an address (the scheduler's: tcp://host:8786)")
        return self


class IngestValidation(Section):
    min_duration_sec: float = Field(ge=0)
    max_duration_sec: float = Field(gt=0)
    min_notes: int = Field(ge=1)
    max_note_sec: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "IngestValidation":
        if self.max_duration_sec <= self.min_duration_sec:
            raise ValueError("max_duration_sec must exceed min_duration_sec")
        return self


class Download(Section):
    archive: Literal[ARCHIVES]
    sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$")


class IngestSource(Section):
    dir: str = Field(min_length=1)
    download: Download


class Ingest(Section):
    mirror: str = Field(min_length=1)
    validation: IngestValidation
    sources: dict[Literal["percepiano", "maestro", "giantmidi"], IngestSource] = Field(
        min_length=1)


class Features(Section):
    n_jobs: int = Field(ge=1)
    chord_window_sec: float = Field(gt=0)


class RenderWindows(Section):
    enabled: bool
    window_sec: float = Field(gt=0)
    hop_sec: float = Field(gt=0)
    max_performances: int | None = Field(ge=1)
    max_windows_per_performance: int | None = Field(ge=1)


class Render(Section):
    soundfonts: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)  # names or paths
    sample_rate: int = Field(gt=0)
    tail_sec: float = Field(ge=0)
    controls: list[Annotated[int, Field(ge=0, le=127)]]
    soft_pedal_attenuation_cb: float = Field(ge=0)
    soft_pedal_cutoff_cents: float
    velocity_cutoff_cents: float
    program: int = Field(ge=0, le=127)
    bank: int = Field(ge=0, le=16383)
    reverb: bool
    chorus: bool
    polyphony: int = Field(ge=1)
    synth_gain: float = Field(gt=0)
    normalize: Literal[NORMALIZE]
    target_dbfs: float = Field(le=0)
    peak_dbfs: float = Field(le=0)
    workers: int = Field(ge=1)
    maestro: RenderWindows


class Spectral(Section):
    sample_rate: int = Field(gt=0)
    n_fft: int = Field(ge=1)
    hop_length: int = Field(ge=1)
    n_mels: int = Field(ge=1)
    fmin: float = Field(gt=0)
    fmax: float = Field(gt=0)
    cqt_bins: int = Field(ge=1)
    cqt_bins_per_octave: int = Field(ge=1)
    amin_db: float = Field(lt=0)
    store_frames: bool
    max_clipped_fraction: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _band(self) -> "Spectral":
        if self.fmax <= self.fmin:
            raise ValueError("fmax must exceed fmin")
        return self


class Mert(Section):
    model: str = Field(min_length=1)  # a local folder or a hub id
    trust_remote_code: bool
    allow_download: bool
    layers: Literal["all"] | list[int] = Field(min_length=1)
    layer_weights: list[float] | None = Field(min_length=1)
    store_layers: bool
    store_frames: bool
    chunk_sec: float = Field(gt=0)
    min_chunk_sec: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    device: str = Field(pattern=r"^(cpu|auto|cuda(:[0-9]+)?)$")  # cpu, auto, cuda or cuda:N
    dtype: Literal["float32", "bfloat16"]
    max_clipped_fraction: float = Field(ge=0, le=1)


class EncodeAudio(Section):
    encoder: Literal[AUDIO_ENCODERS]
    sources: list[Literal["percepiano", "maestro"]] = Field(min_length=1)
    soundfonts: list[str] | None = Field(min_length=1)
    workers: int = Field(ge=1)
    spectral: Spectral
    mert: Mert


Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


def _tiers(item):  # one level per tier 1, 2, 3
    return Annotated[list[item], Field(min_length=3, max_length=3)]


class DegradePercepiano(Section):
    max_items: int | None = Field(ge=1)


class DegradeMaestro(Section):
    max_performances: int | None = Field(ge=1)
    max_windows: int | None = Field(ge=1)
    window_sec: float = Field(gt=0)
    hop_sec: float = Field(gt=0)


class DegradeSources(Section):  # null: no items of that source
    percepiano: DegradePercepiano | None
    maestro: DegradeMaestro | None


class Timing(Section):
    jitter_ms: _tiers(NonNegative)
    drift_depth: _tiers(NonNegative)
    drift_knot_sec: float = Field(gt=0)


class Accuracy(Section):
    substitution_rate: _tiers(Fraction)
    deletion_rate: _tiers(Fraction)


class Dynamics(Section):
    compression: _tiers(Fraction)
    randomization_sigma: _tiers(NonNegative)


class Pedal(Section):
    removal_fraction: _tiers(Fraction)
    over_pedal_fraction: _tiers(Fraction)


class Articulation(Section):
    shorten_factor: _tiers(Positive)
    lengthen_factor: _tiers(Positive)


class Families(Section):
    timing: Timing
    accuracy: Accuracy
    dynamics: Dynamics
    pedal: Pedal
    articulation: Articulation


class DegradeAudio(Section):
    enabled: bool
    soundfont: str = Field(min_length=1)
    max_items: int | None = Field(ge=1)
    noise_snr_db: _tiers(float)
    clip_percent: _tiers(Annotated[float, Field(gt=0, le=100)])
    low_pass_cutoff_hz: _tiers(Positive)


class Degrade(Section):
    seed: int
    n_jobs: int = Field(ge=1)
    write_midi: bool
    sources: DegradeSources
    families: Families
    audio: DegradeAudio


class Tokenizer(Section):
    kind: Literal[TOKENIZER_KINDS]
    tempo_bpm: float = Field(gt=0)
    beat_res: dict[Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+$")],
                   Annotated[int, Field(ge=1)]] = Field(min_length=1)
    num_velocities: int = Field(ge=1, le=127)


class Tokenize(Section):
    tokenizer: Tokenizer
    giantmidi_roles: list[Literal["performance", "transcription"]]
    exclude_works: list[str]
    max_len: int = Field(ge=1)
    min_len: int = Field(ge=1)
    heldout_fraction: float = Field(gt=0, lt=1)
    seed: int
    leak_check_ngram: int = Field(ge=1)

    @field_validator("exclude_works")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _lengths(self) -> "Tokenize":
        if self.min_len > self.max_len:
            raise ValueError("min_len must not exceed max_len")
        return self


Device = Annotated[str, Field(pattern=r"^(cpu|cuda(:[0-9]+)?)$")]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class Profiled(Section):
    """A section with named overrides: ``profile`` (null, or a key of ``profiles``) selects the
    one merged over the section's values (:func:`load_config`); every profile is checked."""

    profile: str | None
    profiles: dict[str, dict]

    @model_validator(mode="after")
    def _known_profile(self) -> "Profiled":
        if self.profile is not None and self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of {sorted(self.profiles)}")
        return self


class EncoderShape(Section):
    d_model: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    n_layers: int = Field(ge=1)
    d_ff: int = Field(ge=1)
    dropout: Fraction
    position: Literal["alibi", "learned"]

    @model_validator(mode="after")
    def _heads_divide(self) -> "EncoderShape":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must divide by n_heads {self.n_heads}")
        return self


class PretrainTrain(Section):
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seq_len: int = Field(ge=1)
    window_notes: int = Field(ge=1)
    mask_rate: float = Field(gt=0, lt=1)
    lr: float = Field(gt=0)
    min_lr: float = Field(ge=0)
    warmup: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    checkpoint_every: int = Field(ge=1)
    loader_workers: int = Field(ge=0)
    augment: bool
    dropout: Fraction | None


Range = Annotated[list[float], Field(min_length=2, max_length=2)]


class PreservingRanges(Section):  # pianoeval.degrade.preserving.PreservingConfig
    transpose: Annotated[list[int], Field(min_length=2, max_length=2)]
    tempo: Range
    velocity_sigma: Range
    timing_sigma_ms: Range

    @model_validator(mode="after")
    def _ordered(self) -> "PreservingRanges":
        for name in ("transpose", "tempo", "velocity_sigma", "timing_sigma_ms"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low} exceeds high {high}")
        return self


class PretrainEval(Section):
    max_sequences: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seed: int


class PretrainMidi(Profiled):
    seed: int
    n_encoders: int = Field(ge=1)
    device: Device
    num_threads: int = Field(ge=1)
    model: EncoderShape
    train: PretrainTrain
    augment: PreservingRanges
    eval: PretrainEval


class FinetuneTrain(Section):
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    head_lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_frac: Fraction
    layer_mix: bool
    ridge_alphas: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    max_epochs: int = Field(ge=0)
    patience: int = Field(ge=1)
    grad_clip: float = Field(gt=0)
    head_dropout: Fraction
    train_crop: int | None = Field(ge=1)


class FinetuneVariant(Section):
    pretrained: bool


class FinetuneMidi(Profiled):
    splits: list[Literal[SPLIT_NAMES]] = Field(min_length=1)
    piece_seeds: int | None = Field(ge=1)
    seed: int
    n_seeds: int = Field(ge=1)
    device: Device
    num_threads: int = Field(ge=1)
    n_jobs: int = Field(ge=1)
    models: dict[str, FinetuneVariant] = Field(min_length=1)
    train: FinetuneTrain


SECTIONS: dict[str, type[Section]] = {
    "ingest": Ingest, "labels": Labels, "splits": Splits, "features": Features,
    "baselines": Baselines, "release": Release, "evaluate": Evaluate, "fanout": Fanout,
    "render": Render, "encode_audio": EncodeAudio, "align": Align, "degrade": Degrade,
    "tokenize": Tokenize, "pretrain_midi": PretrainMidi, "finetune_midi": FinetuneMidi}


def _message(section: str, error: dict) -> str:
    key = ".".join([section, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {error['msg']} (got {error['input']!r})"


def parse_section(section: str, values: dict) -> Section:
    """``values`` checked against the model of ``section``; ConfigError lists every bad key.
    A section with profiles is checked as it is and with each profile merged over it; the
    result has the selected profile merged in."""
    model = SECTIONS[section]
    parsed = _validate(section, model, values)
    if not issubclass(model, Profiled):
        return parsed
    for name, over in values["profiles"].items():
        _validate(f"{section}.profiles.{name}", model, merge_params(values, over))
    return _validate(section, model, resolve_profile(values, section)) if values["profile"] \
        else parsed


def _validate(section: str, model: type[Section], values: dict) -> Section:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("; ".join(_message(section, e) for e in exc.errors())) from None


def load_config(section: str, path: str | Path = "params.yaml") -> Section:
    """Section ``section`` of ``path``, typed and checked (:func:`parse_section`). A stage
    calls it first: a bad section ends the run (exit 1) with the message, no traceback."""
    try:
        return parse_section(section, load_params(section, path))
    except ConfigError as exc:
        raise SystemExit(f"{path}: {exc}") from None
