"""Study configuration: validation, grid expansion into cells, stable cell keys and chunks.

The configuration is checked once, when the Snakefile is parsed, so a bad value fails before any
job runs. Structural rules live in ``workflow/schemas/config.schema.yaml`` (JSON Schema); this
module reports a violation with the config key and the allowed values taken from the schema's
``description``, then adds the checks a schema cannot express (``min <= max``, known methods).

A cell is identified by its parameter values only, never by its position in the grid: its
``name`` is a canonical string of the values and its ``key`` a 63-bit hash of that name. Seeds,
output paths and table rows all derive from the key/name, so reordering or extending the grid
leaves existing cells untouched.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from glmmshrink.config_limits import (
    did_you_mean,
    option_problems,
    size_problems,
    without_check_only_options,
)


def _format_number(value: float) -> str:
    """Shortest round-trip text of a number, without a trailing '.0' (1.0 -> '1', 0.25 -> '0.25')."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Cell:
    """One data-generating mechanism: I groups, n_i ~ U{min..max} trials, logit p_i = logit p0 + sd z_i."""

    n_groups: int
    n_trials_min: int
    n_trials_max: int
    re_sd: float
    p0: float

    def __post_init__(self):
        if self.n_groups < 1:
            raise ValueError(f"n_groups must be >= 1, got {self.n_groups}")
        if self.n_trials_min < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials_min}")
        if self.n_trials_min > self.n_trials_max:
            raise ValueError(
                f"n_trials min must be <= max, got min={self.n_trials_min}, max={self.n_trials_max}"
            )
        if not (math.isfinite(self.re_sd) and self.re_sd >= 0):
            raise ValueError(f"re_sd must be a finite number >= 0, got {self.re_sd}")
        if not 0 < self.p0 < 1:
            raise ValueError(f"p0 must be strictly between 0 and 1, got {self.p0}")

    @property
    def balanced(self) -> bool:
        return self.n_trials_min == self.n_trials_max

    @property
    def name(self) -> str:
        """Readable, canonical directory name, e.g. ``I30_J10_sd1_p0.7`` or ``I30_J2-50_sd1_p0.5``."""
        trials = (
            f"{self.n_trials_min}"
            if self.balanced
            else f"{self.n_trials_min}-{self.n_trials_max}"
        )
        return f"I{self.n_groups}_J{trials}_sd{_format_number(self.re_sd)}_p{_format_number(self.p0)}"

    @property
    def key(self) -> int:
        """Stable 63-bit integer from the cell's parameter values (SHA-256 of ``name``)."""
        digest = hashlib.sha256(self.name.encode("ascii")).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    @property
    def beta_true(self) -> float:
        return math.log(self.p0 / (1 - self.p0))

    def parameters(self) -> dict[str, Any]:
        """Plain values, for Snakemake ``params`` and table columns."""
        return {
            "n_groups": self.n_groups,
            "n_trials_min": self.n_trials_min,
            "n_trials_max": self.n_trials_max,
            "re_sd": float(self.re_sd),
            "p0": float(self.p0),
        }


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
        return Cell(int(block["n_groups"]), int(n_trials), int(n_trials),
                    float(block["re_sd"]), float(block["p0"]))

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


def _trials_range(spec) -> tuple[int, int]:
    if isinstance(spec, Mapping):
        return int(spec["min"]), int(spec["max"])
    return int(spec), int(spec)


def expand_grid(grid) -> tuple[Cell, ...]:
    """Cells of the grid's blocks (cross product of each block's axes), first occurrence kept."""
    blocks = _as_list(grid)
    cells: dict[str, Cell] = {}
    for block_index, block in enumerate(blocks):
        for n_groups in _as_list(block["n_groups"]):
            for trials in _as_list(block["n_trials"]):
                n_min, n_max = _trials_range(trials)
                if n_min > n_max:
                    raise ValueError(
                        f"config key 'grid[{block_index}].n_trials': min ({n_min}) must be "
                        f"<= max ({n_max}) in an unbalanced design"
                    )
                for re_sd in _as_list(block["re_sd"]):
                    for p0 in _as_list(block["p0"]):
                        cell = Cell(int(n_groups), n_min, n_max, float(re_sd), float(p0))
                        cells.setdefault(cell.name, cell)
    return tuple(cells.values())


def check_config(config: Mapping, schema: Mapping, known_methods) -> StudyConfig:
    """Validate a raw config mapping and return the :class:`StudyConfig`.

    Raises
    ------
    ValueError
        Naming every offending key and what it allows.
    """
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
