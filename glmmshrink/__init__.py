"""glmmshrink: how far binomial GLMM group estimates are shrunk, measured at scale."""

from glmmshrink.bayes import BayesPosterior, posterior_glmm
from glmmshrink.betabinomial import BetaBinomialFit, fit_betabinomial
from glmmshrink.laplace import GlmmFit, fit_glmm
from glmmshrink.pql import PqlFit, fit_pql

__all__ = [
    "BayesPosterior",
    "BetaBinomialFit",
    "GlmmFit",
    "PqlFit",
    "fit_betabinomial",
    "fit_glmm",
    "fit_pql",
    "posterior_glmm",
]
__version__ = "0.1.0"
