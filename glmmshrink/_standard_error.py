"""lme4's default standard error of the fixed intercept, from the Hessian over (beta, sigma).

lme4 1.1's ``vcov.merMod`` with ``use.hessian = TRUE`` (its default for glmer) inverts the
finite-difference Hessian of the deviance over (theta, beta) and keeps the beta block; with one
scalar random effect theta = sigma. When that block is not positive it falls back to the PIRLS
value ``use.hessian = FALSE``, ``[sum_i w_i / (1 + sigma^2 w_i)]^(-1/2)`` with
w_i = n_i p_i (1 - p_i) at the conditional modes, which treats sigma as known.

At a boundary fit (sigma = 0 exactly) lme4's ``deriv12`` differences the deviance without bounds,
stepping to theta = -1e-4 where the deviance equals its value at +1e-4 (it is even in theta). The
cross term is then zero and the beta block of the inverse is the inverse of the beta-only
curvature, sum_i n_i p0 (1 - p0): the binomial GLM's SE. The fallback formula gives the same value
at sigma = 0, so a boundary fit gets the GLM SE either way (checked against lme4 1.1-31 on five
singular fits in tests/data/lme4_se_reference.json, to its finite-difference error < 3e-7).
"""

from __future__ import annotations

import numpy as np


def beta_standard_error(hess, sigma, conditional_information):
    """SE of beta as lme4's default ``vcov``, elementwise over replicates.

    Parameters
    ----------
    hess : ndarray, shape (3, R)
        d2/dbeta2, d2/dbeta dsigma, d2/dsigma2 of the log-likelihood at the estimate.
    sigma : ndarray, shape (R,)
    conditional_information : ndarray, shape (R,)
        sum_i w_i / (1 + sigma^2 w_i) at the conditional modes (lme4's ``use.hessian = FALSE``).

    Returns
    -------
    ndarray, shape (R,)
        sqrt([(-H)^(-1)]_{beta beta}) where -H is positive definite and sigma > 0; otherwise, as
        lme4 falls back and at sigma = 0, conditional_information^(-1/2).
    """
    info_bb, info_bs, info_ss = -hess[0], -hess[1], -hess[2]
    det = info_bb * info_ss - info_bs * info_bs
    use_hessian = (sigma > 0) & (info_bb > 0) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        from_hessian = np.sqrt(info_ss / det)
        conditional = 1.0 / np.sqrt(conditional_information)
    return np.where(use_hessian, from_hessian, conditional)
