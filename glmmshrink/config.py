"""Study configuration: validation, grid expansion into cells, stable cell keys and chunks.

The configuration is checked once, when the Snakefile is parsed, so a bad value fails before any
job runs. Structural rules live in ``workflow/schemas/config.schema.yaml`` (JSON Schema); this
module reports a violation with the config key and the allowed values taken from the schema's
``description``, then adds the checks a schema cannot express (``min <= max``, known methods).

Cells, their names and keys, and the grid's part of the schema come from the axes table in
:mod:`glmmshrink.grid` (re-exported here: ``Cell``, ``expand_grid``). A cell is identified by its
parameter values only, never by its position in the grid, so reordering or extending the grid
leaves existing cells untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from glmmshrink.config_limits import (
    did_you_mean,
    option_problems,
    size_problems,
    without_check_only_options,
)
from glmmshrink.grid import Cell, expand_grid, schema_with_axes  # noqa: F401 -- re-exported


@dataclass(frozen=True)
class SeedFigures:
    """Cells the seed thread's figures show: the question's dataset and the answer's facets."""

    question: Cell
    answer: tuple[Cell, ...]
    replicates_pooled: int


# The CrossValidated thread's designs; config key 'seed_figures' overrides any part.
SEED_FIGURES_DEFAULT = {
    "question": {"n_groups": 30, "n_trials": 10, "re_sd": 1.0, "p0": 0.7},
    "answer": {"n_groups": 30, "n_trials": [10, 20, 50], "re_sd": 0.7, "p0": 0.5},
    "replicates_pooled": 5,
}


def seed_figures(spec: Mapping) -> SeedFigures:
    """The :class:`SeedFigures` of config key ``seed_figures`` (missing parts take the defaults)."""
    spec = {**SEED_FIGURES_DEFAULT, **(spec or {})}
    question, answer = spec["question"], spec["answer"]

    def cell(block, n_trials):
        return Cell(n_groups=int(block["n_groups"]), n_trials_min=int(n_trials),
                    n_trials_max=int(n_trials), re_sd=float(block["re_sd"]),
                    p0=float(block["p0"]))

    return SeedFigures(
        question=cell(question, question["n_trials"]),
        answer=tuple(cell(answer, j) for j in _as_list(answer["n_trials"])),
        replicates_pooled=int(spec["replicates_pooled"]),
    )


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: master seed, replicates per cell, chunking, cells and methods."""

    seed: int
    replicates: int
    chunk_size: int
    cells: tuple[Cell, ...]
    methods: tuple[str, ...]
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shrinkage_bins: int = 10
    seed_figures: SeedFigures = field(default_factory=lambda: seed_figures({}))

    def cell(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(f"no cell named {name!r} in the grid")

    def chunks(self) -> list[tuple[int, int]]:
        """Half-open replicate ranges [start, stop) of at most ``chunk_size`` replicates."""
        return [
            (start, min(start + self.chunk_size, self.replicates))
            for start in range(0, self.replicates, self.chunk_size)
        ]

    def fit_priority(self, name: str) -> float:
        """Scheduling priority of the cell's fit jobs: the costliest cells start first.

        Longest-first keeps every core busy to the end of the fitting phase (a long job started
        last runs alone while the other cores idle). The cost is guessed from the cell alone:
        the Bayes posterior, most of a fit job, costs most near sigma = 0 (on the default study
        cells with sd <= 0.5 took 7-13 s of one core, those with sd >= 0.7 4-7 s), then with
        more trials per group. Only the order of jobs depends on it, never a number.
        """
        cell = self.cell(name)
        return 1.0 / (1.0 + cell.re_sd) + cell.n_trials_max / 10_000


def _key_path(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _unknown_key_message(error) -> str:
    """An additionalProperties violation: the stray key(s), the valid keys, a close match."""
    valid = list(error.schema.get("properties", {}))
    stray = [key for key in error.instance if key not in valid]
    where = _key_path(error.absolute_path)
    path = list(error.absolute_path)
    if len(path) == 2 and path[0] == "method_options":
        return "\n  ".join(
            f"config key '{where}.{key}': method '{path[1]}' has no option '{key}' "
            f"(known keys: {', '.join(valid)}){did_you_mean(key, valid)}"
            for key in stray
        )
    scope = "valid top-level keys" if where == "<top level>" else f"valid keys of '{where}'"
    prefix = "" if where == "<top level>" else f"{where}."
    return "\n  ".join(
        f"config key '{prefix}{key}' is not allowed ({scope}: {', '.join(valid)})"
        f"{did_you_mean(key, valid)}"
        for key in stray
    )


def _schema_errors(config: Mapping, schema: Mapping) -> list[str]:
    import jsonschema  # only the Snakefile validates; fitting jobs skip this import

    validator = jsonschema.validators.validator_for(schema)(schema)
    messages = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        # For anyOf/oneOf, report the branch that got furthest; its schema has the description.
        best = jsonschema.exceptions.best_match([error]) if error.context else error
        if best.validator == "additionalProperties" and isinstance(best.instance, Mapping):
            messages.append(_unknown_key_message(best))
            continue
        description = best.schema.get("description") or error.schema.get("description")
        allowed = f" (allowed: {description})" if description else ""
        messages.append(f"config key '{_key_path(best.absolute_path)}': {best.message}{allowed}")
    return messages


def missing_from_user_files(user_config: Mapping, schema: Mapping, files) -> str | None:
    """The error for required keys that the user's ``--configfile`` files (and ``--config``) lack.

    Snakemake loads the Snakefile's ``configfile: config.yaml`` underneath every ``--configfile``,
    so without this check a key missing from the user's file silently takes the default study's
    value. ``user_config`` is what the user's files and ``--config`` set, merged.
    """
    missing = [key for key in schema.get("required", []) if key not in user_config]
    if not missing:
        return None
    names = ", ".join(str(f) for f in files)
    keys = ", ".join(f"'{key}'" for key in missing)
    return (
        f"config key(s) {keys} missing from {names}: a study given with --configfile must set "
        f"{', '.join(schema['required'])} itself, otherwise Snakemake would silently take them "
        "from the default study's config.yaml (copy them from there, or pass "
        "--replace-workflow-config, Snakemake >= 9, to see what your file alone gives)"
    )


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def check_config(config: Mapping, schema: Mapping, known_methods) -> StudyConfig:
    """Validate a raw config mapping and return the :class:`StudyConfig`.

    Raises
    ------
    ValueError
        Naming every offending key and what it allows.
    """
    schema = schema_with_axes(schema)  # the grid part comes from glmmshrink.grid.AXES
    messages = _schema_errors(config, schema)
    if messages:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(messages))
    unknown = [m for m in config["methods"] if m not in known_methods]
    if unknown:
        raise ValueError(
            f"config key 'methods': unknown method(s) {unknown} "
            f"(allowed: {sorted(known_methods)})"
            f"{did_you_mean(unknown[0], known_methods)}"
        )
    options = dict(config.get("method_options") or {})
    stray = [m for m in options if m not in known_methods]
    if stray:
        raise ValueError(
            f"config key 'method_options': options for unknown method(s) {stray} "
            f"(allowed: {sorted(known_methods)})"
        )
    # Before the grid is expanded: these bound what expanding it would cost.
    messages = size_problems(config) + option_problems(options, known_methods)
    if messages:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(messages))
    options = without_check_only_options(options)
    return StudyConfig(
        seed=int(config["seed"]),
        replicates=int(config["replicates"]),
        chunk_size=int(config["chunk_size"]),
        cells=expand_grid(config["grid"]),
        methods=tuple(config["methods"]),
        method_options=options,
        shrinkage_bins=int(config.get("shrinkage_bins", 10)),
        seed_figures=seed_figures(config.get("seed_figures")),
    )
