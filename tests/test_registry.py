"""Declared once: a toy method and a toy figure, each added in one place (a registry entry made
here), flow through the config check, the chunk tables, the summaries and the figures."""

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import expit, logit

from glmmshrink.config import check_config
from glmmshrink.figure_registry import FIGURES, Figure, FigureInputs, SUMMARY_TABLES
from glmmshrink.figures import save
from glmmshrink.methods import METHODS, Method, MethodFit
from glmmshrink.study import fit_chunk
from glmmshrink.summary import combine, summarise_cell

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def fit_toy(y, n, options):
    """Moment shrinkage on the logit scale: beta = logit of the pooled proportion, sigma^2 = the
    empirical logits' variance minus their mean sampling variance, p_i pulled toward expit(beta)
    by a factor ``options['pull']``; a +-0.1 'interval' around p_i and the binomial Wald interval
    of beta."""
    pooled = y.sum(axis=1) / n.sum(axis=1)
    beta = logit(np.clip(pooled, 0.01, 0.99))
    empirical = np.log((y + 0.5) / (n - y + 0.5))
    sigma = np.sqrt(np.maximum(empirical.var(axis=1, ddof=1)
                               - np.mean(1 / (n * 0.25), axis=1), 0.0))
    p_hat = expit(beta[:, None] + (1 - options["pull"]) * (empirical - beta[:, None]))
    proportion = expit(beta)
    beta_se = 1 / np.sqrt(n.sum(axis=1) * proportion * (1 - proportion))
    return MethodFit(
        beta_hat=beta, sigma_hat=sigma, p_hat=p_hat, b=np.full(y.shape, np.nan),
        b_sd=np.full(y.shape, np.nan), converged=np.ones(len(y), bool),
        singular=sigma == 0, separated=np.zeros(len(y), bool),
        extra_replicate={"improper": pooled == 0, "toy_pull": np.full(len(y), options["pull"]),
                         "beta_se": beta_se, "beta_lower": beta - 1.96 * beta_se,
                         "beta_upper": beta + 1.96 * beta_se},
        extra_group={"p_lower": np.clip(p_hat - 0.1, 0, 1), "p_upper": np.clip(p_hat + 0.1, 0, 1)},
    )


TOY = Method(name="toy", fit=fit_toy, label="Toy pull {pull}", color="C6", order=15, marker="^",
             interval_estimands=("p", "beta"), can_be_improper=True, extra_hyperparameters=("toy_pull",),
             default_options={"pull": 0.3}, description="moment shrinkage, for the tests")
REGISTRY = METHODS.with_methods(TOY)


@pytest.fixture(scope="module")
def toy_study():
    config = copy.deepcopy(yaml.safe_load((ROOT / "tests/config_small.yaml").read_text()))
    config.update(methods=["raw", "laplace", "toy"], method_options={"toy": {"pull": 0.4}},
                  replicates=12)
    config["seed_figures"]["answer"]["n_trials"] = [5, 20]
    study = check_config(config, SCHEMA, REGISTRY)
    options = {name: REGISTRY[name].options(study.method_options.get(name))
               for name in study.methods}
    per_cell, groups = [], []
    for cell in study.cells:
        replicates, group_table = fit_chunk(cell, study.seed, 0, study.replicates, study.methods,
                                            study.method_options, registry=REGISTRY)
        groups.append(group_table.to_pandas())
        per_cell.append(summarise_cell(cell, replicates.to_pandas(), groups[-1], 4, REGISTRY))
    return study, options, combine(per_cell), pd.concat(groups, ignore_index=True)


def test_the_study_registry_is_untouched():
    assert "toy" not in METHODS and "toy" in REGISTRY
    with pytest.raises(ValueError, match="unknown method"):
        check_config({**yaml.safe_load((ROOT / "tests/config_small.yaml").read_text()),
                      "methods": ["toy"]}, SCHEMA, METHODS)


def test_a_toy_method_reaches_every_summary_table(toy_study):
    study, _, tables, groups = toy_study
    performance = tables["performance"]
    toy = performance[performance["method"] == "toy"]
    assert len(toy) > 0 and set(toy["cell"]) == {cell.name for cell in study.cells}
    measured = set(zip(toy["estimand"], toy["measure"]))
    # estimates_hyperparameters, interval_estimands and extra_hyperparameters, each honoured:
    assert {("sigma", "bias"), ("beta", "rmse"), ("p", "coverage_95"), ("beta", "modelse"),
            ("toy_pull", "mean"), ("p", "rmse_ratio_vs_raw")} <= measured
    pull = toy[toy["estimand"] == "toy_pull"].query("measure == 'mean'")["value"]
    assert pull.to_numpy() == pytest.approx(0.4, abs=1e-12)  # the config's option reached the fit
    assert set(tables["fit_flags"].query("method == 'toy'")["flag"]) >= {"improper", "singular"}
    assert "toy" in set(tables["theory"]["method"])  # it shrinks
    assert "toy" in set(tables["shrinkage_curve"]["method"])
    assert set(groups.loc[groups["method"] == "toy", "p_upper"].notna()) == {True}


def figure_text(figure) -> str:
    texts = [text.get_text() for text in figure.texts]
    for legend in figure.legends:
        texts += [text.get_text() for text in legend.get_texts()]
    for axis in figure.axes:
        texts += [axis.get_title(), *(text.get_text() for text in axis.texts)]
        if axis.get_legend():
            texts += [text.get_text() for text in axis.get_legend().get_texts()]
    return " | ".join(texts)


# Every registered figure that draws methods shows the toy; seed_question is the thread's
# question, which fitted the Laplace GLMM only.
SHOWS_METHODS = [name for name in FIGURES if name != "seed_question"]


@pytest.mark.parametrize("name", SHOWS_METHODS)
def test_a_toy_method_appears_in_the_figures(toy_study, name):
    study, options, tables, groups = toy_study
    inputs = FigureInputs(tables=tables, groups=groups, methods=REGISTRY, method_options=options,
                          seed_figures=study.seed_figures)
    figure = FIGURES[name].draw(inputs)
    assert "Toy pull 0.4" in figure_text(figure)  # the label, with the config's option
    plt.close(figure)


@pytest.mark.parametrize("name", ["shrinkage_methods", "why_shrink", "misspecification"])
def test_figures_colour_a_method_as_its_entry_says(toy_study, name):
    from matplotlib.colors import to_hex

    study, options, tables, groups = toy_study
    figure = FIGURES[name].draw(FigureInputs(tables=tables, groups=groups, methods=REGISTRY,
                                             method_options=options,
                                             seed_figures=study.seed_figures))
    toy_lines = [line for axis in figure.axes for line in axis.get_lines()
                 if line.get_label().startswith("Toy pull")]
    handles = [handle for legend in figure.legends + [a.get_legend() for a in figure.axes]
               if legend for handle, text in zip(legend.legend_handles, legend.get_texts())
               if text.get_text().startswith("Toy pull")]
    assert toy_lines or handles
    for artist in toy_lines + handles:
        colour = artist.get_color() if hasattr(artist, "get_color") else artist.get_facecolor()
        if not isinstance(colour, str) and np.ndim(colour) == 2:
            colour = colour[0]
        assert to_hex(colour) == to_hex(TOY.color)
    plt.close(figure)


def toy_figure(inputs: FigureInputs):
    performance = inputs.tables["performance"]
    figure, axis = plt.subplots()
    rows = performance.query("measure == 'rmse' and estimand == 'p'")
    for method in inputs.methods.ordered(rows["method"]):
        axis.plot(rows.loc[rows["method"] == method, "value"].to_numpy(),
                  color=inputs.methods[method].color, label=inputs.methods.label(method))
    axis.legend()
    return figure


def test_a_toy_figure_is_a_target_with_inputs_a_caption_name_and_a_drawing(toy_study, tmp_path):
    study, options, tables, _ = toy_study
    entry = Figure(name="toy_figure", draw=toy_figure, tables=("performance",),
                   category="Toy", docs=True)
    registry = FIGURES.with_figures(entry)
    assert "toy_figure" not in FIGURES
    assert {"results/figures/toy_figure.png",
            "results/figures/toy_figure.pdf"} <= set(registry.files())
    assert "toy_figure" in registry.docs()
    assert registry["toy_figure"].input_files(study) == {
        "performance": "results/summary/performance.parquet"}
    assert registry["toy_figure"].caption == "toy_figure.rst"
    import re

    assert re.fullmatch(registry.wildcard_pattern(), "toy_figure")
    assert not re.fullmatch(FIGURES.wildcard_pattern(), "toy_figure")
    # What rule figure's script does with an entry: draw from the inputs, save PNG and PDF.
    drawn = registry["toy_figure"].draw(FigureInputs(tables={"performance": tables["performance"]},
                                                     methods=REGISTRY, method_options=options))
    save(drawn, tmp_path / "toy_figure.png", tmp_path / "toy_figure.pdf")
    assert (tmp_path / "toy_figure.png").stat().st_size > 1000
    assert (tmp_path / "toy_figure.pdf").stat().st_size > 1000


def test_every_registered_figure_has_a_caption_and_reads_known_tables():
    for name, figure in FIGURES.items():
        caption = ROOT / "workflow/report" / figure.caption
        assert caption.exists() and len(caption.read_text().split()) > 20, name
        assert set(figure.tables) <= set(SUMMARY_TABLES)
    with pytest.raises(ValueError, match="unknown table"):
        Figure(name="bad", draw=toy_figure, tables=("performances",), category="Toy")


def test_figure_jobs_start_slowest_first_and_after_every_fit_job():
    slow = Figure(name="slow_toy", draw=toy_figure, tables=(), category="Toy", draw_seconds=500)
    registry = FIGURES.with_figures(slow)
    priorities = {name: registry.priority(name) for name in registry}
    assert len(priorities) == len(FIGURES) + 1
    # Fit jobs have priority >= 1 (workflow/rules/common.smk): every figure waits for them.
    assert all(0 < value < 1 for value in priorities.values())
    assert priorities["shrinkage_curves"] > priorities["rmse_ratio"] > priorities["nested_loop"]
    assert priorities["slow_toy"] == max(priorities.values())


def test_methods_are_ordered_and_labelled_by_the_registry():
    assert REGISTRY.ordered(["bayes", "toy", "raw", "agq", "laplace"]) == [
        "raw", "laplace", "toy", "agq", "bayes"]
    assert REGISTRY.label("agq", {"agq": {"nagq": 9}}) == "AGQ-9"
    assert REGISTRY.label("agq") == "AGQ-25"
    assert REGISTRY.having(["raw", "toy", "bayes"], "estimates_hyperparameters") == ["toy", "bayes"]
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.with_methods(TOY)
    with pytest.raises(KeyError, match="not registered"):
        REGISTRY["nope"]
