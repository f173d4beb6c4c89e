"""glmmshrink: how far binomial GLMM group estimates are shrunk, measured at scale."""

from glmmshrink.laplace import GlmmFit, fit_glmm

__all__ = ["GlmmFit", "fit_glmm"]
__version__ = "0.1.0"
