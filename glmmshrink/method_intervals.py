"""The interval columns each method adds to the chunk tables, built from its fit.

A method's fit function merges :class:`IntervalColumns` into its ``extra_replicate`` and
``extra_group`` columns; :mod:`glmmshrink.summary_intervals` reads them. Bayes needs no helper:
its columns are the posterior's own (``beta_se`` = posterior SD of beta, ``beta_lower`` and
``beta_upper`` its 95 % credible interval, ``p_lower`` and ``p_upper`` those of p_i).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from glmmshrink.intervals import (
    NOMINAL_LEVEL, binomial_null_loglik, conditional_mode_interval, wald_interval, wilson_interval,
)


@dataclass(frozen=True)
class IntervalColumns:
    """Extra chunk-table columns: ``replicate`` arrays of shape (R,), ``group`` arrays (R, G)."""

    replicate: Mapping[str, np.ndarray] = field(default_factory=dict)
    group: Mapping[str, np.ndarray] = field(default_factory=dict)


def raw_columns(y, n, level: float = NOMINAL_LEVEL) -> IntervalColumns:
    """``p_lower``, ``p_upper``: the Wilson interval of each y_i / n_i (NaN for padding)."""
    lower, upper = wilson_interval(y, n, level)
    return IntervalColumns(group={"p_lower": lower, "p_upper": upper})


def likelihood_fit_columns(y, n, fit, beta_se, level: float = NOMINAL_LEVEL) -> IntervalColumns:
    """Columns of a ``fit_glmm`` fit (Laplace or AGQ) of counts (R, G).

    Parameters
    ----------
    y, n : array_like of int, shape (R, G)
        The fitted counts.
    fit : GlmmFit
        Its ``beta`` (R,), ``b``, ``b_sd`` (R, G) and ``loglik`` (R,) are used.
    beta_se : array_like, shape (R,)
        lme4's default ``vcov`` SE of beta (:func:`glmmshrink.glmer_summary.intercept_se`).

    Returns
    -------
    IntervalColumns
        replicate: ``beta_se``, ``beta_lower``, ``beta_upper`` (Wald), ``loglik`` (the fit's,
        incl. sum log C(n_i, y_i)) and ``loglik_null`` (:func:`binomial_null_loglik`);
        group: ``p_lower``, ``p_upper`` (:func:`conditional_mode_interval`).
    """
    beta = np.atleast_1d(np.asarray(fit.beta, np.float64))
    beta_se = np.atleast_1d(np.asarray(beta_se, np.float64))
    if beta_se.shape != beta.shape:
        raise ValueError(f"beta_se has shape {beta_se.shape}, the fit's beta {beta.shape}")
    beta_lower, beta_upper = wald_interval(beta, beta_se, level)
    p_lower, p_upper = conditional_mode_interval(beta, np.atleast_2d(fit.b), np.atleast_2d(fit.b_sd), level)
    null = np.atleast_1d(binomial_null_loglik(np.atleast_2d(y), np.atleast_2d(n)))
    return IntervalColumns(
        replicate={"beta_se": beta_se, "beta_lower": beta_lower, "beta_upper": beta_upper,
                   "loglik": np.atleast_1d(np.asarray(fit.loglik, np.float64)), "loglik_null": null},
        group={"p_lower": p_lower, "p_upper": p_upper},
    )
