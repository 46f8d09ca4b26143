"""Typed, checked sections of params.yaml.

params.yaml holds every value and says what each key does; these models hold none of their
own (no defaults). :func:`load_config` reads one section and refuses, before any work, an
unknown or missing key, a value of the wrong type, out of range or not among the choices,
naming the key (``splits.n_folds``) and what is allowed. pydantic does the checking (strict:
no silent casts of "abc" or 1.5 to an int).

Sections not listed in ``SECTIONS`` are still read untyped with ``pianoeval.params.load_params``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from pianoeval.params import load_params

SPLIT_NAMES = ("piece", "performer", "work", "lopo")
ESTIMATORS = ("mean", "ridge")
# Choices named here, not imported: importing the modules that define them would make every stage
# that reads its params depend on their code. A test keeps each equal to its source.
MATCHERS = ("dualdtw", "automatic")  # pianoeval.align.match.MATCHERS
FEATURE_SETS = ("all", "performance_only")  # pianoeval.features.sets.FEATURE_SETS


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


SECTIONS: dict[str, type[Section]] = {"labels": Labels, "splits": Splits, "align": Align,
                                      "baselines": Baselines, "release": Release,
                                      "evaluate": Evaluate}


def _message(section: str, error: dict) -> str:
    key = ".".join([section, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {error['msg']} (got {error['input']!r})"


def parse_section(section: str, values: dict) -> Section:
    """``values`` checked against the model of ``section``; ConfigError lists every bad key."""
    model = SECTIONS[section]
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
