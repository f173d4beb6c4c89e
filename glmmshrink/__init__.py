"""glmmshrink: how far binomial GLMM group estimates are shrunk, measured at scale."""

import importlib

# Imported on first use (PEP 562), so `glmmshrink --help` and the Snakefile's config check do not
# load the fitters and scipy.
_EXPORTS = {
    "BayesPosterior": "glmmshrink.bayes",
    "posterior_glmm": "glmmshrink.bayes",
    "GlmmFit": "glmmshrink.laplace",
    "fit_glmm": "glmmshrink.laplace",
    "PqlFit": "glmmshrink._pql_result",
    "fit_pql": "glmmshrink.pql",
    "BetaBinomialFit": "glmmshrink.betabinomial",
    "fit_betabinomial": "glmmshrink.betabinomial",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'glmmshrink' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
