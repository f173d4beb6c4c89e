"""The study's grid: its axes, declared once in :data:`AXES`, and the cells they span.

An axis is one row of :data:`AXES`: its config key, the :class:`Cell` fields it sets, how a
config value is parsed and checked, its default, how it shows in a cell's name and its JSON
Schema. Everything else derives from the table: grid expansion (``itertools.product`` over a
block's axes, as scikit-learn's ``ParameterGrid``), cell names and keys, the config schema's
grid part, the Snakemake wildcard regex, table columns and figure series keys.

An axis at its default is left out of the cell name, so adding an axis never renames an
existing cell, never changes its seed key and never refits it. Adding an axis is one more row
here, its field on :class:`Cell` (with the default) and its use in :mod:`glmmshrink.simulate`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from glmmshrink.random_effects import RE_DIST_FORMS, RE_DIST_PATTERN, T_PATTERN, canonical_re_dist

REQUIRED = object()  # default of an axis every grid block must give


def _format_number(value: float) -> str:
    """Shortest round-trip text of a number, without a trailing '.0' (1.0 -> '1', 0.25 -> '0.25')."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One axis of the grid.

    Parameters
    ----------
    name : str
        Key in a grid block (``config['grid'][i][name]``).
    fields : mapping of str to type
        The :class:`Cell` fields (and summary-table columns) it sets, with their types.
    parse : callable
        One config value -> {field: value}; raises ValueError saying what is wrong.
    check : callable
        {field: value} -> None, raising ValueError; :class:`Cell` runs it on construction.
    name_part : callable
        {field: value} -> the axis's part of a cell name (``"J10"``).
    name_pattern : str
        Regex matching every ``name_part``.
    label : callable
        {field: value} -> legend text (``"J=10"``).
    value_schema : dict
        JSON Schema of one value; its ``description`` is what config errors say is allowed.
    default : any
        Config value when a block leaves the axis out; :data:`REQUIRED` if it must be given.
    sort_key : callable
        {field: value} -> a sortable tuple: the axis's order of levels in figures (by default
        the field values in order).
    """

    name: str
    fields: Mapping[str, type]
    parse: Callable[[Any], dict]
    check: Callable[[Mapping], None]
    name_part: Callable[[Mapping], str]
    name_pattern: str
    label: Callable[[Mapping], str]
    value_schema: dict
    default: Any = REQUIRED
    sort_key: Callable[[Mapping], tuple] = lambda values: tuple(values.values())

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def values_of(self, source) -> dict:
        """This axis's field values of a Cell or a table row (mapping or namedtuple)."""
        get = source.get if isinstance(source, Mapping) else lambda f: getattr(source, f)
        return {field: get(field) for field in self.fields}

    def at_default(self, source) -> bool:
        return not self.required and self.values_of(source) == self.parse(self.default)


def _positive_integer(value, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def _parse_n_trials(value) -> dict:
    low, high = (value["min"], value["max"]) if isinstance(value, Mapping) else (value, value)
    return {"n_trials_min": int(low), "n_trials_max": int(high)}


def _check_n_groups(values) -> None:
    _positive_integer(values["n_groups"], "n_groups")


def _check_n_trials(values) -> None:
    low, high = values["n_trials_min"], values["n_trials_max"]
    _positive_integer(low, "n_trials")
    if low > high:
        raise ValueError(f"min ({low}) must be <= max ({high}) in an unbalanced design")


def _check_re_sd(values) -> None:
    if not (math.isfinite(values["re_sd"]) and values["re_sd"] >= 0):
        raise ValueError(f"re_sd must be a finite number >= 0, got {values['re_sd']}")


def _check_p0(values) -> None:
    if not 0 < values["p0"] < 1:
        raise ValueError(f"p0 must be strictly between 0 and 1, got {values['p0']}")


def _trials_text(values) -> str:
    low, high = values["n_trials_min"], values["n_trials_max"]
    return f"{low}" if low == high else f"{low}-{high}"


AXES: tuple[Axis, ...] = (
    Axis(
        name="n_groups",
        fields={"n_groups": int},
        parse=lambda value: {"n_groups": int(value)},
        check=_check_n_groups,
        name_part=lambda values: f"I{values['n_groups']}",
        name_pattern=r"I\d+",
        label=lambda values: f"I={values['n_groups']}",
        value_schema={"type": "integer", "minimum": 1,
                      "description": "an integer >= 1 (I, groups per dataset)"},
    ),
    Axis(
        name="n_trials",
        fields={"n_trials_min": int, "n_trials_max": int},
        parse=_parse_n_trials,
        check=_check_n_trials,
        name_part=lambda values: f"J{_trials_text(values)}",
        name_pattern=r"J\d+(?:-\d+)?",
        label=lambda values: f"J={_trials_text(values)}",
        # Balanced J in order, then the unbalanced ranges.
        sort_key=lambda values: (values["n_trials_min"] != values["n_trials_max"],
                                 values["n_trials_min"], values["n_trials_max"]),
        value_schema={
            "description": "an integer >= 1 (J, trials per group) or {min, max} integers with "
                           "1 <= min <= max (unbalanced, n_i ~ uniform on min..max)",
            "anyOf": [
                {"type": "integer", "minimum": 1,
                 "description": "an integer >= 1 (J, trials per group)"},
                {"type": "object",
                 "description": "{min: integer >= 1, max: integer >= min} for an unbalanced design",
                 "properties": {
                     "min": {"type": "integer", "minimum": 1, "description": "an integer >= 1"},
                     "max": {"type": "integer", "minimum": 1, "description": "an integer >= min"},
                 },
                 "required": ["min", "max"], "additionalProperties": False},
            ],
        },
    ),
    Axis(
        name="re_sd",
        fields={"re_sd": float},
        parse=lambda value: {"re_sd": float(value)},
        check=_check_re_sd,
        name_part=lambda values: f"sd{_format_number(values['re_sd'])}",
        name_pattern=r"sd[^_/]+",
        label=lambda values: f"sd={values['re_sd']:g}",
        value_schema={"type": "number", "minimum": 0,
                      "description": "a number >= 0 (random-intercept SD on the logit scale)"},
    ),
    Axis(
        name="p0",
        fields={"p0": float},
        parse=lambda value: {"p0": float(value)},
        check=_check_p0,
        name_part=lambda values: f"p{_format_number(values['p0'])}",
        name_pattern=r"p[^_/]+",
        label=lambda values: f"p0={values['p0']:g}",
        value_schema={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                      "description": "a number strictly between 0 and 1 (baseline probability)"},
    ),
    Axis(
        name="re_dist",
        fields={"re_dist": str},
        parse=lambda value: {"re_dist": canonical_re_dist(value)},
        check=lambda values: canonical_re_dist(values["re_dist"]) and None,
        name_part=lambda values: values["re_dist"],
        name_pattern=rf"{T_PATTERN}|bimodal|skewed",
        label=lambda values: f"re_dist={values['re_dist']}",
        value_schema={"type": "string", "pattern": f"^(?:{RE_DIST_PATTERN})$",
                      "description": f"{RE_DIST_FORMS} (random-effect distribution, scaled to "
                                     "mean 0 and SD re_sd)"},
        default="normal",
        sort_key=lambda values: (values["re_dist"] != "normal", values["re_dist"]),
    ),
)
AXIS = {axis.name: axis for axis in AXES}


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One data-generating mechanism: I groups, n_i ~ U{min..max} trials,
    logit p_i = logit p0 + sd z_i with z_i of distribution ``re_dist``, standardized to mean 0
    and SD 1 (:mod:`glmmshrink.random_effects`).

    Fields are those of :data:`AXES` (checked at import); construct by keyword only.
    """

    n_groups: int
    n_trials_min: int
    n_trials_max: int
    re_sd: float
    p0: float
    re_dist: str = "normal"

    def __post_init__(self):
        for axis in AXES:
            axis.check(axis.values_of(self))
            for field, kind in axis.fields.items():  # Cell(re_sd=1) is Cell(re_sd=1.0)
                object.__setattr__(self, field, kind(getattr(self, field)))
        # One spelling per distribution ("t5.0" is "t5"), so names and keys are canonical.
        object.__setattr__(self, "re_dist", canonical_re_dist(self.re_dist))

    @property
    def balanced(self) -> bool:
        return self.n_trials_min == self.n_trials_max

    @property
    def name(self) -> str:
        """Canonical directory name, e.g. ``I30_J10_sd1_p0.7``, ``I30_J2-50_sd1_p0.5`` or
        ``I30_J10_sd1_p0.5_t3``: one part per axis, axes at their default left out."""
        return "_".join(axis.name_part(axis.values_of(self)) for axis in AXES
                        if not axis.at_default(self))

    @property
    def key(self) -> int:
        """Stable 63-bit integer from the cell's parameter values (SHA-256 of ``name``)."""
        digest = hashlib.sha256(self.name.encode("ascii")).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    @property
    def beta_true(self) -> float:
        return math.log(self.p0 / (1 - self.p0))

    def parameters(self) -> dict[str, Any]:
        """Every field as a plain value: the cell columns of the summary tables."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def identifying_parameters(self) -> dict[str, Any]:
        """The fields of the axes not at their default: what the cell's numbers depend on, for
        Snakemake ``params`` (a new axis leaves existing cells' params, hence their jobs, alone).
        ``Cell(**cell.identifying_parameters()) == cell``."""
        return {field: value for axis in AXES if not axis.at_default(self)
                for field, value in axis.values_of(self).items()}


_AXIS_FIELDS = [field for axis in AXES for field in axis.fields]
if _AXIS_FIELDS != [field.name for field in fields(Cell)]:
    raise ImportError(f"Cell fields {[f.name for f in fields(Cell)]} differ from the axes' "
                      f"fields {_AXIS_FIELDS}: declare each axis's fields on Cell, in order")


def cell_name_pattern() -> str:
    """Regex of a cell name (the Snakemake ``{cell}`` wildcard), from the axes' patterns."""
    parts = [axis.name_pattern for axis in AXES if axis.required]
    optional = "".join(f"(?:_(?:{axis.name_pattern}))?" for axis in AXES if not axis.required)
    return "_".join(parts) + optional


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def expand_grid(grid) -> tuple[Cell, ...]:
    """Cells of the grid's blocks, each the ``itertools.product`` of its axes' values, in block
    order, a cell listed twice kept once. A block may leave out axes that have a default.

    Raises
    ------
    ValueError
        Naming the config key (``grid[0].n_trials``) of a value no cell can have.
    """
    cells: dict[str, Cell] = {}
    for index, block in enumerate(_as_list(grid)):
        choices = []
        for axis in AXES:
            key = f"grid[{index}].{axis.name}"
            if axis.name not in block and axis.required:
                raise ValueError(f"config key '{key}' is required")
            values = []
            for value in _as_list(block.get(axis.name, axis.default)):
                try:
                    parsed = axis.parse(value)
                    axis.check(parsed)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"config key '{key}': {error}") from None
                values.append(parsed)
            choices.append(values)
        for combination in itertools.product(*choices):
            cell = Cell(**{f: v for values in combination for f, v in values.items()})
            cells.setdefault(cell.name, cell)
    return tuple(cells.values())


def schema_with_axes(schema: Mapping) -> dict:
    """``schema`` with its grid part, ``$defs.<axis>_value`` and ``$defs.block``, made from
    :data:`AXES` (the schema file holds placeholders for them)."""
    schema = copy.deepcopy(dict(schema))
    definitions = schema.setdefault("$defs", {})
    properties = {"name": {"type": "string",
                           "description": "a label for readers; it does not affect results"}}
    for axis in AXES:
        definitions[f"{axis.name}_value"] = axis.value_schema
        properties[axis.name] = {
            "description": f"{axis.value_schema['description']}, or a list of those",
            "anyOf": [{"$ref": f"#/$defs/{axis.name}_value"},
                      {"type": "array", "minItems": 1,
                       "items": {"$ref": f"#/$defs/{axis.name}_value"}}],
        }
    optional = ", ".join(f"{axis.name} (default {axis.default})" for axis in AXES
                         if not axis.required)
    definitions["block"] = {
        "type": "object",
        "description": "a grid block: {" + ", ".join(a.name for a in AXES if a.required)
                       + "}, each a value or a list of values, optionally " + optional
                       + " and a name",
        "properties": properties,
        "required": [axis.name for axis in AXES if axis.required],
        "additionalProperties": False,
    }
    return schema


def series_columns(exclude=()) -> list[str]:
    """Table columns of every axis not in ``exclude`` (axis names): what tells a figure's
    series apart once its x axis and facets (the excluded axes) are fixed."""
    return [field for axis in AXES if axis.name not in exclude for field in axis.fields]


def describe(row, exclude=(), only_varying=None) -> str:
    """Legend text of a table row's axes, e.g. ``"I=30, p0=0.5, re_dist=t3"``.

    ``exclude`` drops axes (by name); ``only_varying``, a DataFrame, drops the axes whose
    columns take a single value in it.
    """
    parts = []
    for axis in AXES:
        if axis.name in exclude:
            continue
        if only_varying is not None and all(only_varying[f].nunique() <= 1 for f in axis.fields):
            continue
        parts.append(axis.label(axis.values_of(row)))
    return ", ".join(parts)


def at_defaults(frame, axes=None):
    """Boolean Series: rows of a table whose optional axes (or ``axes``) are at their default."""
    keep = None
    for axis in AXES:
        if axis.required or (axes is not None and axis.name not in axes):
            continue
        default = axis.parse(axis.default)
        mask = None
        for field, value in default.items():
            equal = frame[field] == value
            mask = equal if mask is None else mask & equal
        keep = mask if keep is None else keep & mask
    if keep is None:
        import pandas as pd

        return pd.Series(True, index=frame.index)
    return keep
