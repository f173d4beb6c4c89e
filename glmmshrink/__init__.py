"""glmmshrink: how far binomial GLMM group estimates are shrunk, measured at scale."""

from glmmshrink.bayes import BayesPosterior, posterior_glmm
from glmmshrink.laplace import GlmmFit, fit_glmm

__all__ = ["BayesPosterior", "GlmmFit", "fit_glmm", "posterior_glmm"]
__version__ = "0.1.0"
