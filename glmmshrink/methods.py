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


@dataclass(frozen=True, kw_only=True)
class Method:
    """A registered method: how it fits, how figures show it, and what it reports.

    Consumers (the summaries, figures and the report) ask these fields and never test a
    method's name or probe its table columns.

    Parameters
    ----------
    name : str
        Key in ``config['methods']`` and the ``method`` column of every table.
    fit : callable
        ``fit(y, n, options) -> MethodFit`` for counts of shape (R, G).
    label : str
        Legend label; ``{option}`` fields are filled from the resolved options (``"AGQ-{nagq}"``).
    color, marker : str
        Matplotlib colour and marker of the method in every figure.
    filled : bool
        Filled markers (else open, so a method drawn over another stays visible).
    order : int
        Position in legends and panel rows (ascending; ties by name).
    estimates_hyperparameters : bool
        ``beta_hat`` and ``sigma_hat`` estimate the GLMM's beta and sigma: their bias, EmpSE and
        RMSE are summarised, and the hyperparameter figures show the method.
    shrinks : bool
        The group estimates pool information across groups: the method is compared with the
        theory of shrinkage and with the raw proportion (``raw`` is the one that does not).
    interval_estimands : tuple of str
        Estimands with 95 % intervals in the tables: ``p`` means group columns ``p_lower`` and
        ``p_upper`` (summarised as ``coverage_95`` and ``width_95``); ``beta`` means replicate
        columns ``beta_se`` (the model-based SE), ``beta_lower`` and ``beta_upper`` (summarised
        as ``modelse``, ``relerror_modelse``, ``coverage_95`` and ``width_95``).
    likelihood_ratio_test : bool
        The replicate table has ``loglik`` and ``loglik_null`` (the sigma = 0 log-likelihood):
        the rejection rate of the boundary likelihood-ratio test of sigma = 0 is summarised.
    can_be_improper : bool
        The replicate table has a boolean ``improper`` column, counted as a flag.
    extra_hyperparameters : tuple of str
        Replicate columns holding the method's own hyperparameter estimates (no true value in
        the GLMM): their mean and EmpSE are summarised under estimand = the column name.
    default_options : mapping
        Options the method takes, with their defaults (``config['method_options'][name]``).
    description : str
        One line for the README and ``--help``-style listings.
    """

    name: str
    fit: Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], MethodFit]
    label: str
    color: str
    order: int
    marker: str = "o"
    filled: bool = True
    estimates_hyperparameters: bool = True
    shrinks: bool = True
    interval_estimands: tuple[str, ...] = ()
    likelihood_ratio_test: bool = False
    can_be_improper: bool = False
    extra_hyperparameters: tuple[str, ...] = ()
    default_options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        unknown = set(self.interval_estimands) - set(INTERVAL_ESTIMANDS)
        if unknown:
            raise ValueError(f"method {self.name!r}: interval_estimands {sorted(unknown)} not in "
                             f"{list(INTERVAL_ESTIMANDS)}")

    @property
    def gives_intervals(self) -> bool:
        return bool(self.interval_estimands)

    def options(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**self.default_options, **(overrides or {})}

    def label_for(self, options: Mapping[str, Any] | None = None) -> str:
        """The legend label with this run's options filled in (defaults where not given)."""
        return self.label.format(**self.options(options))


# Where each interval estimand's bounds live: the group table (p) or the replicate table.
INTERVAL_ESTIMANDS = {"p": "groups", "beta": "replicates"}


class MethodRegistry(Mapping[str, Method]):
    """Methods by name. :data:`METHODS` is the study's; tests build their own with
    :meth:`with_methods` and pass it in, leaving the study's untouched."""

    def __init__(self, methods=()):
        self._methods: dict[str, Method] = {}
        for method in methods:
            self.add(method)

    def add(self, method: Method) -> Method:
        if method.name in self._methods:
            raise ValueError(f"method {method.name!r} is already registered")
        self._methods[method.name] = method
        return method

    def register(self, name: str, **spec):
        """Decorator adding ``fit(y, n, options) -> MethodFit`` as ``Method(name=name, **spec)``."""

        def decorate(fit):
            self.add(Method(name=name, fit=fit, **spec))
            return fit

        return decorate

    def with_methods(self, *methods: Method) -> "MethodRegistry":
        """A new registry: these methods plus every registered one."""
        return MethodRegistry([*self._methods.values(), *methods])

    def __getitem__(self, name: str) -> Method:
        try:
            return self._methods[name]
        except KeyError:
            raise KeyError(f"method {name!r} is not registered (registered: "
                           f"{sorted(self._methods)})") from None

    def __iter__(self):
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def ordered(self, names) -> list[str]:
        """``names`` in figure order (``Method.order``, then name), duplicates dropped."""
        return sorted(dict.fromkeys(names), key=lambda name: (self[name].order, name))

    def label(self, name: str, options: Mapping[str, Mapping] | None = None) -> str:
        """Label of method ``name``; ``options`` maps method names to their options."""
        return self[name].label_for((options or {}).get(name))

    def having(self, names, capability: str) -> list[str]:
        """The methods among ``names`` with a true ``capability``, in figure order."""
        return [name for name in self.ordered(names) if getattr(self[name], capability)]


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


def fit_safely(method: Method, options, y, n) -> tuple[MethodFit, list[str]]:
    """Fit counts (R, G) with a registered method, never raising.

    If the batch raises, each replicate is refitted alone; a replicate that still raises gets NaN
    estimates, all flags False, and the exception text as its error (others get "").
    """
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


def fit_batch(y, n, method_options: Mapping[str, Mapping[str, Any]], registry=None):
    """Every method of ``method_options`` on one batch: {method: (MethodFit, errors)}.

    One joblib task; ``registry`` (default :data:`METHODS`) supplies the fit functions.
    """
    registry = METHODS if registry is None else registry
    return {
        name: fit_safely(registry[name], options, y, n) for name, options in method_options.items()
    }
