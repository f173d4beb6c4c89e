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


def _failed_fit(n_groups: int) -> MethodFit:
    missing = np.full((1, n_groups), np.nan)
    return MethodFit(
        beta_hat=np.full(1, np.nan),
        sigma_hat=np.full(1, np.nan),
        p_hat=missing,
        b=missing,
        b_sd=missing,
        converged=np.zeros(1, bool),
        singular=np.zeros(1, bool),
        separated=np.zeros(1, bool),
    )


def stack_fits(fits) -> MethodFit:
    """Concatenate MethodFits along the replicate axis; extras missing from a part become NaN."""

    def extras(attribute, shape_of):
        names = sorted({name for fit in fits for name in getattr(fit, attribute)})
        return {
            name: np.concatenate([
                getattr(fit, attribute).get(name, np.full(shape_of(fit), np.nan)) for fit in fits
            ])
            for name in names
        }

    fields = ("beta_hat", "sigma_hat", "p_hat", "b", "b_sd", "converged", "singular", "separated")
    return MethodFit(
        **{name: np.concatenate([getattr(fit, name) for fit in fits]) for name in fields},
        extra_replicate=extras("extra_replicate", lambda fit: fit.beta_hat.shape),
        extra_group=extras("extra_group", lambda fit: fit.p_hat.shape),
    )


def fit_safely(method_name: str, options, y, n) -> tuple[MethodFit, list[str]]:
    """Fit counts (R, G) with a registered method, never raising.

    If the batch raises, each replicate is refitted alone; a replicate that still raises gets NaN
    estimates, all flags False, and the exception text as its error (others get "").
    """
    method = METHODS[method_name]
    try:
        return method.fit(y, n, options), [""] * y.shape[0]
    except Exception:  # noqa: BLE001 -- a failing replicate is data, not a crash
        pass
    fits, errors = [], []
    for row in range(y.shape[0]):
        try:
            fits.append(method.fit(y[row : row + 1], n[row : row + 1], options))
            errors.append("")
        except Exception as error:  # noqa: BLE001
            fits.append(_failed_fit(y.shape[1]))
            errors.append(f"{type(error).__name__}: {error}")
    return stack_fits(fits), errors


def fit_batch(y, n, method_options: Mapping[str, Mapping[str, Any]]):
    """Every method on one batch: {method: (MethodFit, errors)}. One joblib task."""
    return {name: fit_safely(name, options, y, n) for name, options in method_options.items()}
