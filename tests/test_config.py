"""Config validation, grid expansion and stable cell keys."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from glmmshrink import posterior_glmm
from glmmshrink.config import Cell, check_config, expand_grid, seed_figures
from glmmshrink.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def load(path):
    return yaml.safe_load((ROOT / path).read_text())


def check(config):
    return check_config(config, SCHEMA, METHODS)


def test_default_config_has_the_required_designs():
    study = check(load("config.yaml"))
    names = {cell.name for cell in study.cells}
    assert "I30_J10_sd1_p0.7" in names  # the seed question
    assert {f"I30_J{j}_sd0.7_p0.5" for j in (10, 20, 50)} <= names  # the seed answer
    assert {f"I30_J{j}_sd{sd}_p0.5" for j in (5, 10, 20, 50, 100) for sd in ("0.25", "0.5", "1", "2")} <= names
    assert any(not cell.balanced for cell in study.cells)
    assert study.replicates >= 1000
    assert set(study.methods) >= {"raw", "laplace", "agq"}


def test_default_config_runs_bayes_and_has_the_seed_figure_cells():
    study = check(load("config.yaml"))
    assert "bayes" in study.methods
    names = {cell.name for cell in study.cells}
    figures = study.seed_figures
    assert figures.question.name == "I30_J10_sd1_p0.7"
    assert [cell.name for cell in figures.answer] == [f"I30_J{j}_sd0.7_p0.5" for j in (10, 20, 50)]
    assert {figures.question.name, *(cell.name for cell in figures.answer)} <= names
    assert figures == seed_figures({})  # the config spells out the defaults


def test_bayes_prior_options_reach_posterior_glmm():
    study = check({**load("tests/config_small.yaml"),
                   "method_options": {"bayes": {"sigma_prior": ["half_cauchy", 1.0]}}})
    options = METHODS["bayes"].options(study.method_options["bayes"])
    assert options == {"beta_prior": "flat", "sigma_prior": ["half_cauchy", 1.0]}
    y, n = np.array([[3, 5, 9, 1]]), np.array([[10, 10, 10, 10]])
    fit = METHODS["bayes"].fit(y, n, options)
    direct = posterior_glmm(y, n, sigma_prior=("half_cauchy", 1.0))
    assert fit.sigma_hat[0] == direct.sigma_mean[0]
    assert fit.sigma_hat[0] != posterior_glmm(y, n).sigma_mean[0]


def test_small_config_is_small():
    study = check(load("tests/config_small.yaml"))
    assert len(study.cells) == 7
    assert study.replicates * len(study.cells) <= 280


def test_cell_key_depends_on_values_not_spelling_or_position():
    design = dict(n_groups=30, n_trials_min=10, n_trials_max=10)
    assert Cell(**design, re_sd=1, p0=0.7).key == Cell(**design, re_sd=1.0, p0=0.7).key
    assert Cell(**design, re_sd=1.0, p0=0.7).key != Cell(**design, re_sd=1.0, p0=0.5).key
    grid = load("config.yaml")["grid"]
    forward = {cell.name: cell.key for cell in expand_grid(grid)}
    backward = {cell.name: cell.key for cell in expand_grid(list(reversed(grid)))}
    assert forward == backward
    assert 0 <= min(forward.values()) and max(forward.values()) < 2**63


def test_overlapping_blocks_give_each_cell_once():
    block = {"n_groups": 30, "n_trials": [10, 20], "re_sd": 1, "p0": 0.5}
    cells = expand_grid([block, {**block, "n_trials": 10}])
    assert [cell.name for cell in cells] == ["I30_J10_sd1_p0.5", "I30_J20_sd1_p0.5"]


def test_min_equal_max_is_the_balanced_cell():
    (cell,) = expand_grid({"n_groups": 5, "n_trials": {"min": 8, "max": 8}, "re_sd": 1, "p0": 0.5})
    assert cell.balanced and cell.name == "I5_J8_sd1_p0.5"


def test_chunks_cover_the_replicates():
    config = load("tests/config_small.yaml")
    config.update(replicates=10, chunk_size=4)
    assert check(config).chunks() == [(0, 4), (4, 8), (8, 10)]


BAD = [
    ({"replicates": -5}, "replicates", "integer >= 1"),
    ({"chunk_size": 0}, "chunk_size", "integer >= 1"),
    ({"seed": "abc"}, "seed", "integer >= 0"),
    ({"replicates": "lots"}, "replicates", "integer >= 1"),
    ({"seed": True}, "seed", "integer"),
    ({"methods": ["raw", "lapalce"]}, "methods", "laplace"),
    ({"method_options": {"agq": {"nagq": 0}}}, "method_options.agq.nagq", "integer from 2 to 25"),
    ({"replcates": 5}, "replcates", "not allowed"),
    ({"method_options": {"bayes": {"sigma_prior": ["uniform", 0]}}},
     "method_options.bayes.sigma_prior[1]", "a number > 0"),
    ({"method_options": {"bayes": {"sigma_prior": ["gamma", 1]}}},
     "method_options.bayes.sigma_prior[0]", "half_cauchy"),
    ({"method_options": {"bayes": {"beta_prior": "vague"}}},
     "method_options.bayes.beta_prior", "flat or [normal, mean, sd]"),
    ({"method_options": {"bayes": {"beta_prior": ["normal", 0, -1]}}},
     "method_options.bayes.beta_prior[2]", "a number > 0"),
    ({"method_options": {"bayes": {"prior": "flat"}}}, "method_options.bayes.prior",
     "has no option 'prior' (known keys: beta_prior, sigma_prior)"),
    ({"seed_figures": {"question": {"n_groups": 30, "n_trials": [10], "re_sd": 1, "p0": 0.7}}},
     "seed_figures.question.n_trials", "integer >= 1"),
    ({"seed_figures": {"replicates_pooled": 0}}, "seed_figures.replicates_pooled", "integer >= 1"),
]


@pytest.mark.parametrize("change, key, allowed", BAD)
def test_bad_top_level_values_name_the_key_and_the_allowed_values(change, key, allowed):
    config = {**load("tests/config_small.yaml"), **change}
    with pytest.raises(ValueError) as error:
        check(config)
    assert f"'{key}'" in str(error.value)
    assert allowed in str(error.value)


@pytest.mark.parametrize(
    "axis, value, key, allowed",
    [
        ("re_sd", -0.5, "grid[0].re_sd", ">= 0"),
        ("p0", 1, "grid[0].p0", "strictly between 0 and 1"),
        ("p0", [0.5, 0.0], "grid[0].p0[1]", "strictly between 0 and 1"),
        ("n_trials", 0, "grid[0].n_trials", ">= 1"),
        ("n_groups", 0, "grid[0].n_groups", ">= 1"),
        ("n_trials", {"min": 9, "max": 3}, "grid[0].n_trials", "min (9) must be <= max (3)"),
    ],
)
def test_bad_grid_values_name_the_key(axis, value, key, allowed):
    config = copy.deepcopy(load("tests/config_small.yaml"))
    config["grid"][0][axis] = value
    with pytest.raises(ValueError) as error:
        check(config)
    assert key in str(error.value)
    assert allowed in str(error.value)


def test_fit_priority_starts_small_sd_and_many_trials_first():
    study = check(load("config.yaml"))
    priority = {cell.name: study.fit_priority(cell.name) for cell in study.cells}
    assert len(priority) == len(study.cells)
    # Cost falls with sd (the Bayes posterior near sigma = 0 is the costly part) ...
    assert (priority["I30_J10_sd0_p0.5"] > priority["I30_J10_sd0.25_p0.5"]
            > priority["I30_J10_sd0.5_p0.5"] > priority["I30_J10_sd1_p0.5"]
            > priority["I30_J10_sd2_p0.5"])
    # ... and, at one sd, rises with the trials per group; it never reaches the next sd's.
    assert priority["I30_J100_sd1_p0.5"] > priority["I30_J10_sd1_p0.5"]
    assert priority["I30_J5_sd0.5_p0.5"] > priority["I30_J100_sd1_p0.5"]
    assert all(0 < value < 1.1 for value in priority.values())
