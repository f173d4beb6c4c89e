"""Registry of estimation methods compared by the study.

A method maps counts ``y``, ``n`` of shape (R, G) and its options to a :class:`MethodFit`.
Its :class:`Method` entry also says how figures show it (label, colour, marker, order) and what
it reports (capabilities such as ``estimates_hyperparameters`` or ``interval_estimands``).
Adding one is one decorated function here::

    @register_method("mine", label="Mine", color="C5", order=60, shrinks=True)
    def _fit_mine(y, n, options) -> MethodFit: ...

plus its name in ``config['methods']``; the pipeline, tables, summaries and figures pick it up
from the registry. Registered: ``raw``, ``laplace``, ``agq``, ``bayes``, ``pql`` and
``betabinomial``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from glmmshrink.method_registry import (  # noqa: F401 -- re-exported for the study's modules
    INTERVAL_ESTIMANDS,
    Method,
    MethodFit,
    MethodRegistry,
    _failed_fit,
    fit_safely,
    stack_fits,
)

METHODS = MethodRegistry()
register_method = METHODS.register


def _from_glmm_fit(fit, y, n) -> MethodFit:
    """A ``fit_glmm`` fit with its Wald and conditional-mode intervals and both log-likelihoods."""
    from glmmshrink.method_intervals import likelihood_fit_columns

    columns = likelihood_fit_columns(y, n, fit, fit.beta_se)
    return MethodFit(
        beta_hat=np.atleast_1d(fit.beta),
        sigma_hat=np.atleast_1d(fit.sigma),
        p_hat=np.atleast_2d(fit.p_hat),
        b=np.atleast_2d(fit.b),
        b_sd=np.atleast_2d(fit.b_sd),
        converged=np.atleast_1d(fit.converged),
        singular=np.atleast_1d(fit.singular),
        separated=np.atleast_1d(fit.separated),
        extra_replicate=columns.replicate,
        extra_group=columns.group,
    )


@register_method(
    "raw", label="raw y/n", color="0.45", order=0, estimates_hyperparameters=False,
    shrinks=False, interval_estimands=("p",),
    description="observed proportion y/n, with the Wilson interval",
)
def _fit_raw(y, n, options) -> MethodFit:
    from glmmshrink.method_intervals import raw_columns

    n_replicates = y.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        proportion = y / n
    missing = np.full(n_replicates, np.nan)
    return MethodFit(
        beta_hat=missing,
        sigma_hat=missing,
        p_hat=proportion,
        b=np.full(y.shape, np.nan),
        b_sd=np.full(y.shape, np.nan),
        converged=np.ones(n_replicates, bool),
        singular=np.zeros(n_replicates, bool),
        separated=np.zeros(n_replicates, bool),
        extra_group=raw_columns(y, n).group,
    )


@register_method(
    "laplace", label="Laplace", color="C0", order=10, interval_estimands=("p", "beta"),
    likelihood_ratio_test=True, description="fit_glmm, Laplace approximation (nAGQ = 1)",
)
def _fit_laplace(y, n, options) -> MethodFit:
    from glmmshrink import fit_glmm

    return _from_glmm_fit(fit_glmm(y, n, nagq=1), y, n)


@register_method(
    "agq",
    label="AGQ-{nagq}",
    color="C1",
    order=20,
    marker="D",
    interval_estimands=("p", "beta"),
    likelihood_ratio_test=True,
    default_options={"nagq": 25},
    description="fit_glmm, adaptive Gauss-Hermite quadrature (nAGQ from options, default 25)",
)
def _fit_agq(y, n, options) -> MethodFit:
    from glmmshrink import fit_glmm

    return _from_glmm_fit(fit_glmm(y, n, nagq=int(options["nagq"])), y, n)


def _prior(value):
    # YAML and Snakemake params carry priors as lists; posterior_glmm takes "flat" or a tuple.
    return value if isinstance(value, str) else tuple(value)


@register_method(
    "bayes",
    label="Bayes (posterior mean)",
    color="C2",
    order=30,
    filled=False,
    interval_estimands=("p", "beta"),
    can_be_improper=True,
    default_options={"beta_prior": "flat", "sigma_prior": ["uniform", 100.0]},
    description="posterior means by exact quadrature (posterior_glmm); flat beta and "
    "Uniform(0, 100) sigma priors by default",
)
def _fit_bayes(y, n, options) -> MethodFit:
    """Posterior means of beta, sigma and p_i; posterior SDs and exact 95 % credible intervals
    of beta and p_i as extras (``beta_se`` is beta's posterior SD, the model-based SE).

    An improper posterior (flat beta prior, all y == 0 or all y == n) is the separated dataset
    of the likelihood fits: flagged separated and non-converged, with NaN estimates.
    """
    from glmmshrink import posterior_glmm

    post = posterior_glmm(y, n, beta_prior=_prior(options["beta_prior"]),
                          sigma_prior=_prior(options["sigma_prior"]))
    improper = np.atleast_1d(post.improper).astype(bool)
    missing = np.full(np.shape(y), np.nan)
    return MethodFit(
        beta_hat=np.atleast_1d(post.beta_mean),
        sigma_hat=np.atleast_1d(post.sigma_mean),
        p_hat=np.atleast_2d(post.p_mean),
        b=missing,
        b_sd=missing,
        converged=~improper,
        singular=np.zeros_like(improper),
        separated=improper,
        extra_replicate={"improper": improper, "beta_se": np.atleast_1d(post.beta_sd),
                         "beta_lower": np.atleast_1d(post.beta_lower),
                         "beta_upper": np.atleast_1d(post.beta_upper),
                         "sigma_sd": np.atleast_1d(post.sigma_sd)},
        extra_group={"p_sd": np.atleast_2d(post.p_sd), "p_lower": np.atleast_2d(post.p_lower),
                     "p_upper": np.atleast_2d(post.p_upper)},
    )


@register_method(
    "pql",
    label="PQL",
    color="C3",
    order=40,
    marker="v",
    interval_estimands=("p",),
    description="fit_pql, the fixed point of MASS::glmmPQL (penalized quasi-likelihood)",
)
def _fit_pql(y, n, options) -> MethodFit:
    """PQL estimates of beta, sigma and p_i, with the conditional-mode interval of p_i.

    A fit that did not reach the fixed point (a runaway on all-0/1 groups, or separation) is
    non-converged with NaN estimates; ``damped`` marks fits whose plain glmmPQL iteration cycles.
    """
    from glmmshrink import fit_pql
    from glmmshrink.intervals import conditional_mode_interval

    fit = fit_pql(y, n)
    p_lower, p_upper = conditional_mode_interval(fit.beta, fit.b, fit.b_sd)
    return MethodFit(
        beta_hat=fit.beta,
        sigma_hat=fit.sigma,
        p_hat=fit.p_hat,
        b=fit.b,
        b_sd=fit.b_sd,
        converged=fit.converged,
        singular=fit.sigma == 0,
        separated=fit.separated,
        extra_replicate={"residual_sd": fit.residual_sd, "damped": fit.damped},
        extra_group={"p_lower": p_lower, "p_upper": p_upper},
    )


@register_method(
    "betabinomial",
    label="beta-binomial EB",
    color="C5",
    order=50,
    marker="s",
    estimates_hyperparameters=False,
    interval_estimands=("p",),
    extra_hyperparameters=("mu", "rho"),
    description="fit_betabinomial: ML beta-binomial (mu, rho), p_i = (y_i + a)/(n_i + a + b)",
)
def _fit_betabinomial(y, n, options) -> MethodFit:
    """Empirical-Bayes posterior means of p_i under the ML beta-binomial fit, and the
    equal-tailed 95 % interval of their Beta(y_i + a, n_i - y_i + b) posterior (the naive EB
    interval, which ignores the uncertainty in a and b; a single point mu where rho = 0).

    ``singular`` marks the boundary rho = 0 (no overdispersion), the analogue of sigma = 0.
    """
    from scipy.special import betaincinv

    from glmmshrink import fit_betabinomial

    fit = fit_betabinomial(y, n)
    tail = 0.025
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = fit.a[:, None], fit.b[:, None]
        p_lower, p_upper = (betaincinv(y + a, n - y + b, q) for q in (tail, 1 - tail))
    at_boundary = np.broadcast_to(fit.boundary[:, None], p_lower.shape)
    p_lower = np.where(at_boundary, fit.p_hat, p_lower)
    p_upper = np.where(at_boundary, fit.p_hat, p_upper)
    padding = n == 0
    missing = np.full(np.shape(y), np.nan)
    return MethodFit(
        beta_hat=np.full(len(fit.mu), np.nan),
        sigma_hat=np.full(len(fit.mu), np.nan),
        p_hat=fit.p_hat,
        b=missing,
        b_sd=missing,
        converged=fit.converged,
        singular=fit.boundary,
        separated=fit.separated,
        extra_replicate={"mu": fit.mu, "rho": fit.rho},
        extra_group={"p_lower": np.where(padding, np.nan, p_lower),
                     "p_upper": np.where(padding, np.nan, p_upper)},
    )


def fit_batch(y, n, method_options: Mapping[str, Mapping[str, Any]], registry=None):
    """Every method of ``method_options`` on one batch: {method: (MethodFit, errors)}.

    One joblib task; ``registry`` (default :data:`METHODS`) supplies the fit functions.
    """
    registry = METHODS if registry is None else registry
    return {
        name: fit_safely(registry[name], options, y, n) for name, options in method_options.items()
    }
