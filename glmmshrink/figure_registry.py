"""Registry of the study's figures: what each draws, what it reads, where the report files it.

One :class:`Figure` entry per figure. The workflow expands everything from :data:`FIGURES`: the
target list (``common.smk``), the inputs of the one generic rule ``figure`` (one job per figure,
so figures draw in parallel), the report's category and caption, and the README copies under
``docs/`` (rule ``docs``). Adding a figure is one decorated draw function here::

    @register_figure("my_figure", tables=("performance",), category="Shrinkage")
    def _my_figure(inputs: FigureInputs):
        from glmmshrink.my_figures import my_figure  # matplotlib loads in the figure job only

        return my_figure(inputs.tables["performance"], inputs.methods, inputs.method_options)

plus its caption, ``workflow/report/my_figure.rst``. This module imports neither matplotlib nor
pandas, because Snakemake imports it when it parses the Snakefile, in every job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from glmmshrink.config import Cell, SeedFigures, StudyConfig, seed_figures
from glmmshrink.methods import METHODS, MethodRegistry

SUMMARY_TABLES = ("cells", "performance", "fit_flags", "shrinkage_curve", "theory",
                  "beta_intervals")
# Group-table columns the seed figures use; reading only these keeps the figure jobs light.
GROUP_COLUMNS = ["cell", "replicate", "group", "method", "n_trials", "successes", "p_raw", "p_hat"]


@dataclass(frozen=True)
class FigureInputs:
    """Everything a draw function may use.

    ``tables`` maps the figure's summary tables (``Figure.tables``) to DataFrames; ``groups``
    holds the group-table rows of the seed cells' first ``replicates_pooled`` replicates (for a
    figure with ``group_tables``, else None); ``methods`` is the method registry and
    ``method_options`` the resolved options of the configured methods (for labels).
    """

    tables: Mapping[str, Any]
    groups: Any = None
    methods: MethodRegistry = field(default_factory=lambda: METHODS)
    method_options: Mapping[str, Mapping] = field(default_factory=dict)
    seed_figures: SeedFigures = field(default_factory=lambda: seed_figures({}))


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A registered figure.

    Parameters
    ----------
    name : str
        File stem: ``results/figures/<name>.png`` and ``.pdf``.
    draw : callable
        ``draw(inputs: FigureInputs) -> matplotlib Figure``.
    tables : tuple of str
        Summary tables read (names in :data:`SUMMARY_TABLES`).
    group_tables : bool
        Also reads the seed cells' group tables (``results/cells/<cell>/groups_*.parquet``).
    category : str
        Section of the HTML report.
    docs : bool
        A small PNG copy goes to ``docs/`` for the README (rule ``docs``).
    draw_seconds : float
        Rough time to draw and save the figure (one core of the development VM, default
        study). It only orders the figure jobs, slowest first, so that the last figures drawn
        after the summary are short ones and both cores stay busy to the end.
    """

    name: str
    draw: Callable[[FigureInputs], Any]
    tables: tuple[str, ...]
    category: str
    group_tables: bool = False
    docs: bool = False
    draw_seconds: float = 1.0

    def __post_init__(self):
        unknown = [table for table in self.tables if table not in SUMMARY_TABLES]
        if unknown:
            raise ValueError(f"figure {self.name!r}: unknown table(s) {unknown} "
                             f"(summary tables: {list(SUMMARY_TABLES)})")

    @property
    def caption(self) -> str:
        """Caption file, relative to ``workflow/report/``."""
        return f"{self.name}.rst"

    def input_files(self, study: StudyConfig) -> dict[str, Any]:
        """The files the figure's job reads, named for ``scripts/figures.py``."""
        files: dict[str, Any] = {table: f"results/summary/{table}.parquet" for table in self.tables}
        if self.group_tables:
            files["groups"] = seed_group_files(study)
        return files


class FigureRegistry(Mapping[str, Figure]):
    """Figures by name. :data:`FIGURES` is the study's; tests extend a copy
    (:meth:`with_figures`) and pass it in."""

    def __init__(self, figures=()):
        self._figures: dict[str, Figure] = {}
        for figure in figures:
            self.add(figure)

    def add(self, figure: Figure) -> Figure:
        if figure.name in self._figures:
            raise ValueError(f"figure {figure.name!r} is already registered")
        self._figures[figure.name] = figure
        return figure

    def register(self, name: str, **spec):
        """Decorator adding ``draw(inputs) -> Figure`` as ``Figure(name=name, **spec)``."""

        def decorate(draw):
            self.add(Figure(name=name, draw=draw, **spec))
            return draw

        return decorate

    def with_figures(self, *figures: Figure) -> "FigureRegistry":
        return FigureRegistry([*self._figures.values(), *figures])

    def __getitem__(self, name: str) -> Figure:
        try:
            return self._figures[name]
        except KeyError:
            raise KeyError(f"figure {name!r} is not registered (registered: "
                           f"{sorted(self._figures)})") from None

    def __iter__(self):
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def files(self, extensions=("png", "pdf")) -> list[str]:
        """Every figure file: the workflow's default targets."""
        return [f"results/figures/{name}.{ext}" for name in self for ext in extensions]

    def docs(self) -> list[str]:
        """Names of the figures copied to ``docs/``."""
        return [name for name, figure in self.items() if figure.docs]

    def priority(self, name: str) -> float:
        """Snakemake priority of the figure's job: slower figures first, every figure below
        the fit jobs (whose priorities are at least 1)."""
        return min(self[name].draw_seconds, 99.0) / 100

    def wildcard_pattern(self) -> str:
        """Regex of the ``{figure}`` wildcard: exactly the registered names."""
        import re

        return "|".join(re.escape(name) for name in self)


FIGURES = FigureRegistry()
register_figure = FIGURES.register


def seed_group_files(study: StudyConfig) -> list[str]:
    """Group tables of the chunks holding replicates 0 .. replicates_pooled - 1 of the seed
    cells that the grid has (the others are drawn as placeholder panels)."""
    in_grid = {cell.name for cell in study.cells}
    figures = study.seed_figures
    cells = sorted({cell.name for cell in (figures.question, *figures.answer)} & in_grid)
    return [
        f"results/cells/{cell}/groups_{start}-{stop}.parquet"
        for cell in cells
        for start, stop in study.chunks()
        if start < figures.replicates_pooled
    ]


def seed_figure_parameters(figures: SeedFigures) -> dict:
    """``figures`` as plain values (a Snakemake ``params`` entry); inverse of
    :func:`seed_figures_from_parameters`."""
    return {
        "question": figures.question.identifying_parameters(),
        "answer": [cell.identifying_parameters() for cell in figures.answer],
        "replicates_pooled": figures.replicates_pooled,
    }


def seed_figures_from_parameters(parameters: Mapping) -> SeedFigures:
    return SeedFigures(
        question=Cell(**parameters["question"]),
        answer=tuple(Cell(**cell) for cell in parameters["answer"]),
        replicates_pooled=int(parameters["replicates_pooled"]),
    )


def read_seed_groups(paths, pooled: int):
    """The seed figures' group rows (replicates < ``pooled``) of ``paths``, or None if none."""
    import pandas as pd

    parts = [pd.read_parquet(path, columns=GROUP_COLUMNS, filters=[("replicate", "<", pooled)])
             for path in paths]
    return pd.concat(parts, ignore_index=True) if parts else None


# --- The study's figures. Draw functions import their figure module when called. ---------------


@register_figure("shrinkage_curves", tables=("shrinkage_curve",), category="Shrinkage",
                 draw_seconds=3.2)
def _shrinkage_curves(inputs: FigureInputs):
    from glmmshrink import figures

    return figures.shrinkage_curves(inputs.tables["shrinkage_curve"], inputs.methods,
                                    inputs.method_options)


@register_figure("sigma_bias", tables=("performance",), category="Hyperparameters",
                 draw_seconds=1.8)
def _sigma_bias(inputs: FigureInputs):
    from glmmshrink import figures

    return figures.sigma_bias(inputs.tables["performance"], inputs.methods, inputs.method_options)


@register_figure("singular_rate", tables=("fit_flags",), category="Hyperparameters",
                 draw_seconds=1.7)
def _singular_rate(inputs: FigureInputs):
    from glmmshrink import figures

    return figures.singular_rate(inputs.tables["fit_flags"], inputs.methods,
                                 inputs.method_options)


@register_figure("rmse_ratio", tables=("performance",), category="Shrinkage", draw_seconds=1.9)
def _rmse_ratio(inputs: FigureInputs):
    from glmmshrink import figures

    return figures.rmse_ratio(inputs.tables["performance"], inputs.methods, inputs.method_options)


@register_figure("seed_question", tables=(), group_tables=True, category="Seed thread", docs=True)
def _seed_question(inputs: FigureInputs):
    from glmmshrink import figures_seed

    # The question fitted glmer's default, the Laplace approximation.
    return figures_seed.seed_question(inputs.groups, inputs.seed_figures.question, "laplace",
                                      inputs.methods)


@register_figure("seed_answer", tables=(), group_tables=True, category="Seed thread", docs=True)
def _seed_answer(inputs: FigureInputs):
    from glmmshrink import figures_seed

    return figures_seed.seed_answer(inputs.groups, list(inputs.seed_figures.answer),
                                    inputs.seed_figures.replicates_pooled,
                                    registry=inputs.methods, method_options=inputs.method_options)


@register_figure("shrinkage_methods", tables=("shrinkage_curve",), category="Seed thread",
                 docs=True)
def _shrinkage_methods(inputs: FigureInputs):
    from glmmshrink import figures_seed

    return figures_seed.shrinkage_methods(inputs.tables["shrinkage_curve"],
                                          inputs.seed_figures.question, inputs.methods,
                                          inputs.method_options)


@register_figure("why_shrink", tables=("performance",), category="Seed thread", docs=True,
                 draw_seconds=1.3)
def _why_shrink(inputs: FigureInputs):
    from glmmshrink import figures_seed

    return figures_seed.why_shrink(inputs.tables["performance"], registry=inputs.methods,
                                   method_options=inputs.method_options)


@register_figure("misspecification", tables=("performance", "theory"), category="Misspecification")
def _misspecification(inputs: FigureInputs):
    from glmmshrink import figures

    return figures.misspecification(inputs.tables["performance"], inputs.tables["theory"],
                                    inputs.methods, inputs.method_options)


@register_figure("coverage_zip", tables=("beta_intervals",), category="Uncertainty",
                 draw_seconds=2.4)
def _coverage_zip(inputs: FigureInputs):
    from glmmshrink import figures_uncertainty

    table = inputs.tables["beta_intervals"]
    return figures_uncertainty.coverage_zip(
        table, zip_plot_cells(table, inputs.seed_figures.question), inputs.methods,
        inputs.method_options)


def zip_plot_cells(beta_intervals, question: Cell) -> list[str]:
    """The seed question's cell, and the small-sd cell of the zip plot: the balanced cell with
    normal random effects and the smallest positive sd, preferring the question's J, then
    p0 = 0.5. Cells missing from the table are left to the figure's placeholder panels."""
    table = beta_intervals.drop_duplicates("cell")
    candidates = table[(table["n_trials_min"] == table["n_trials_max"])
                       & (table["re_dist"] == "normal") & (table["re_sd"] > 0)
                       & (table["cell"] != question.name)]
    candidates = candidates.assign(other_j=candidates["n_trials_min"] != question.n_trials_min,
                                   p0_distance=(candidates["p0"] - 0.5).abs())
    order = ["re_sd", "other_j", "p0_distance", "cell"]
    return [question.name, *candidates.sort_values(order).head(1)["cell"]]


@register_figure("nested_loop", tables=("performance", "cells"), category="Uncertainty")
def _nested_loop(inputs: FigureInputs):
    from glmmshrink import figures_uncertainty

    return figures_uncertainty.nested_loop(inputs.tables["performance"], inputs.tables["cells"],
                                           inputs.methods, inputs.method_options)
