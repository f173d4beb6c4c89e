"""The method registry: what a study method is, and how its fits are stacked and kept safe.

A :class:`Method` entry holds a method's fit function, how figures show it and what it reports;
:class:`MethodRegistry` keeps entries by name; :class:`MethodFit` is one batch's estimates.
The study's own methods are registered in :mod:`glmmshrink.methods`.
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
