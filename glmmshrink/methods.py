"""Registry of estimation methods compared by the study.

A method maps counts ``y``, ``n`` of shape (R, G) and its options to a :class:`MethodFit`.
Adding one is a decorated function here; the pipeline, tables and summaries pick it up by name
from ``config['methods']``. Registered: ``raw``, ``laplace``, ``agq`` and ``bayes``.
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


def _prior(value):
    # YAML and Snakemake params carry priors as lists; posterior_glmm takes "flat" or a tuple.
    return value if isinstance(value, str) else tuple(value)


@register_method(
    "bayes",
    default_options={"beta_prior": "flat", "sigma_prior": ["uniform", 100.0]},
    description="posterior means by exact quadrature (posterior_glmm); flat beta and "
    "Uniform(0, 100) sigma priors by default",
)
def _fit_bayes(y, n, options) -> MethodFit:
    """Posterior means of beta, sigma and p_i; the 95 % credible interval of p_i as extras.

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
        extra_replicate={"improper": improper, "beta_sd": np.atleast_1d(post.beta_sd),
                         "sigma_sd": np.atleast_1d(post.sigma_sd)},
        extra_group={"p_sd": np.atleast_2d(post.p_sd), "p_lower": np.atleast_2d(post.p_lower),
                     "p_upper": np.atleast_2d(post.p_upper)},
    )


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
    """Concatenate MethodFits along the replicate axis.

    An extra missing from a part (a failed fit) becomes NaN, or False for a boolean extra, so a
    column keeps one dtype whichever replicates failed.
    """

    def extras(attribute, shape_of):
        present = {}
        for fit in fits:
            for name, value in getattr(fit, attribute).items():
                present.setdefault(name, np.asarray(value).dtype)

        def filler(fit, name):
            dtype = present[name]
            return np.full(shape_of(fit), np.nan if dtype.kind == "f" else 0, dtype=dtype)

        return {
            name: np.concatenate([
                getattr(fit, attribute).get(name, filler(fit, name)) for fit in fits
            ])
            for name in sorted(present)
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
