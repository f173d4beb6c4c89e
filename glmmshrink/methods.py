"""Registry of estimation methods compared by the study.

A method maps counts ``y``, ``n`` of shape (R, G) and its options to a :class:`MethodFit`.
Adding one (e.g. ``bayes``) is a decorated function here; the pipeline, tables and summaries
pick it up by name from ``config['methods']``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class MethodFit:
    """Estimates for R replicates of G groups.

    ``beta_hat``, ``sigma_hat`` and the flags have shape (R,); ``p_hat``, ``b``, ``b_sd`` (R, G).
    ``extra_replicate`` / ``extra_group`` hold method-specific columns of the same shapes.
    """

    beta_hat: np.ndarray
    sigma_hat: np.ndarray
    p_hat: np.ndarray
    b: np.ndarray
    b_sd: np.ndarray
    converged: np.ndarray
    singular: np.ndarray
    separated: np.ndarray
    extra_replicate: Mapping[str, np.ndarray] = field(default_factory=dict)
    extra_group: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered method: its fitting function, defaults and whether it estimates beta/sigma."""

    name: str
    fit: Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], MethodFit]
    estimates_hyperparameters: bool
    default_options: Mapping[str, Any]
    description: str

    def options(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**self.default_options, **(overrides or {})}


METHODS: dict[str, Method] = {}


def register_method(name, *, estimates_hyperparameters=True, default_options=None, description=""):
    """Decorator adding ``fit(y, n, options) -> MethodFit`` to :data:`METHODS` under ``name``."""

    def decorate(fit):
        METHODS[name] = Method(
            name, fit, estimates_hyperparameters, dict(default_options or {}), description
        )
        return fit

    return decorate


def _from_glmm_fit(fit) -> MethodFit:
    return MethodFit(
        beta_hat=np.atleast_1d(fit.beta),
        sigma_hat=np.atleast_1d(fit.sigma),
        p_hat=np.atleast_2d(fit.p_hat),
        b=np.atleast_2d(fit.b),
        b_sd=np.atleast_2d(fit.b_sd),
        converged=np.atleast_1d(fit.converged),
        singular=np.atleast_1d(fit.singular),
        separated=np.atleast_1d(fit.separated),
    )


@register_method("raw", estimates_hyperparameters=False, description="observed proportion y/n")
def _fit_raw(y, n, options) -> MethodFit:
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
    )


@register_method("laplace", description="fit_glmm, Laplace approximation (nAGQ = 1)")
def _fit_laplace(y, n, options) -> MethodFit:
    from glmmshrink import fit_glmm

    return _from_glmm_fit(fit_glmm(y, n, nagq=1))


@register_method(
    "agq",
    default_options={"nagq": 25},
    description="fit_glmm, adaptive Gauss-Hermite quadrature (nAGQ from options, default 25)",
)
def _fit_agq(y, n, options) -> MethodFit:
    from glmmshrink import fit_glmm

    return _from_glmm_fit(fit_glmm(y, n, nagq=int(options["nagq"])))
