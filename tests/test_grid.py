"""The axes table: cells, names, keys, schema and wildcard all follow from glmmshrink.grid.AXES,
and adding an axis (re_dist) left every existing cell exactly as it was."""

import copy
import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from glmmshrink.config import check_config
from glmmshrink.grid import AXES, Cell, cell_name_pattern, expand_grid, schema_with_axes
from glmmshrink.methods import METHODS
from glmmshrink.study import fit_chunk

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def load(path):
    return yaml.safe_load((ROOT / path).read_text())


def old_name(cell: Cell) -> str:
    """The cell name as the code wrote it before the axes table (commit 8b579e7)."""
    def number(value):
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text

    trials = (f"{cell.n_trials_min}" if cell.balanced
              else f"{cell.n_trials_min}-{cell.n_trials_max}")
    return f"I{cell.n_groups}_J{trials}_sd{number(cell.re_sd)}_p{number(cell.p0)}"


# Content digests of the simulated data in the chunk tables (replicates 0-19, seed 7) made with
# the code before the axes table and re_dist existed (commit 8b579e7): cell names, replicate and
# group indices, n_i, y_i, the true p_i and the raw proportions. They depend only on the cell's
# name, key and seed, which the axes table must leave alone; the fitted columns follow the
# fitters, whose own accuracy and batch-independence tests guard them.
BASELINE = {
    "I12_J20_sd1_p0.5": "0d844a6919282dba1615d7cb5795a6e6fb6152db78b62c78c6bb72a4163b6b0e",
    "I12_J2-30_sd1_p0.3": "846c9b2f721a38ec1f4f63de23f6eb03a99a5e51119bcf3f8c4e25b21607c443",
}
BASELINE_GROUP_COLUMNS = ["cell", "replicate", "group", "n_trials", "successes", "p_true",
                          "p_raw", "method", "p_hat"]


def table_digest(table, columns) -> str:
    digest = hashlib.sha256()
    for name in columns:
        column = table.column(name)
        digest.update(f"{name}:{column.type};".encode())
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype == object:
            digest.update("\x1f".join(map(str, values)).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("cell", [
    Cell(n_groups=12, n_trials_min=20, n_trials_max=20, re_sd=1.0, p0=0.5),
    Cell(n_groups=12, n_trials_min=2, n_trials_max=30, re_sd=1.0, p0=0.3, re_dist="normal"),
], ids=["balanced", "unbalanced"])
def test_existing_cells_keep_their_simulated_data_bit_for_bit(cell):
    _, groups = fit_chunk(cell, 7, 0, 20, ["raw"])
    assert table_digest(groups, BASELINE_GROUP_COLUMNS) == BASELINE[cell.name]


def test_default_config_keeps_every_old_cell_name_and_adds_the_misspecified_ones():
    cells = check_config(load("config.yaml"), SCHEMA, METHODS).cells
    normal = [cell for cell in cells if cell.re_dist == "normal"]
    # The 25 cells of the study before the axes table, plus the sd = 0 cells added since.
    assert len(normal) == 28 and all(cell.name == old_name(cell) for cell in normal)
    others = {cell.name for cell in cells if cell.re_dist != "normal"}
    assert others == {f"I30_J10_sd1_p0.5_{dist}" for dist in ("t3", "bimodal", "skewed")}
    assert "I30_J10_sd1_p0.5" in {cell.name for cell in normal}  # their normal comparator


def test_cell_is_keyword_only_and_its_fields_are_the_axes_fields():
    with pytest.raises(TypeError):
        Cell(30, 10, 10, 1.0, 0.5)  # noqa -- positional construction is the error under test
    axis_fields = [field for axis in AXES for field in axis.fields]
    assert [field.name for field in dataclasses.fields(Cell)] == axis_fields


def test_an_axis_at_its_default_is_left_out_of_name_key_and_params():
    plain = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1, p0=0.5)
    normal = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.5,
                  re_dist="normal")
    heavy = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.5, re_dist="t3.0")
    assert plain == normal and plain.name == normal.name == "I30_J10_sd1_p0.5"
    assert plain.key == normal.key
    assert "re_dist" not in plain.identifying_parameters()
    assert heavy.name == "I30_J10_sd1_p0.5_t3" and heavy.key != plain.key
    assert heavy.identifying_parameters()["re_dist"] == "t3"
    for cell in (plain, heavy):
        assert Cell(**cell.identifying_parameters()) == cell
        assert cell.parameters()["re_dist"] == cell.re_dist


def test_blocks_expand_as_the_product_of_their_axes_in_axis_order():
    block = {"n_groups": [10, 20], "n_trials": [5, {"min": 2, "max": 9}], "re_sd": 1, "p0": 0.5,
             "re_dist": ["normal", "skewed"]}
    names = [cell.name for cell in expand_grid(block)]
    assert len(names) == 2 * 2 * 2
    assert names[:4] == ["I10_J5_sd1_p0.5", "I10_J5_sd1_p0.5_skewed",
                         "I10_J2-9_sd1_p0.5", "I10_J2-9_sd1_p0.5_skewed"]


def test_wildcard_pattern_matches_exactly_the_names_cells_can_have():
    pattern = re.compile(cell_name_pattern())
    cells = check_config(load("config.yaml"), SCHEMA, METHODS).cells
    assert all(pattern.fullmatch(cell.name) for cell in cells)
    for wrong in ("I30_J10_sd1_p0.5_normal", "I30_J10_sd1_p0.5_t2", "I30_J10_sd1",
                  "I30_J10_sd1_p0.5_t3_extra"):
        assert not pattern.fullmatch(wrong), wrong


@pytest.mark.parametrize("value, key", [
    ("t2", "grid[0].re_dist"),
    ("cauchy", "grid[0].re_dist"),
    (["t5", "t1.5"], "grid[0].re_dist[1]"),
    ("Normal", "grid[0].re_dist"),
])
def test_a_bad_re_dist_is_rejected_naming_the_key_and_the_allowed_forms(value, key):
    config = copy.deepcopy(load("tests/config_small.yaml"))
    config["grid"][0]["re_dist"] = value
    with pytest.raises(ValueError) as error:
        check_config(config, SCHEMA, METHODS)
    message = str(error.value)
    assert f"'{key}'" in message
    assert "normal, t<df> with df > 2 (e.g. t3), bimodal or skewed" in message


@pytest.mark.parametrize("value", ["t2", "t-3", "gamma", 3])
def test_cell_rejects_a_bad_re_dist_too(value):
    with pytest.raises(ValueError, match="re_dist must be"):
        Cell(n_groups=5, n_trials_min=5, n_trials_max=5, re_sd=1.0, p0=0.5, re_dist=value)


def test_schema_grid_part_is_made_from_the_axes_table():
    schema = schema_with_axes(SCHEMA)
    block = schema["$defs"]["block"]
    assert list(block["properties"]) == ["name", *(axis.name for axis in AXES)]
    assert block["required"] == [axis.name for axis in AXES if axis.required]
    for axis in AXES:
        assert schema["$defs"][f"{axis.name}_value"] == axis.value_schema
    assert SCHEMA["$defs"]["block"] != block  # the file holds a placeholder, not a copy
