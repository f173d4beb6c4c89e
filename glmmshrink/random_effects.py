"""Random-effect distributions of the data-generating mechanism (grid axis ``re_dist``).

Every distribution is standardized to mean 0 and SD 1; the simulator multiplies by ``re_sd``.
So a cell's true sigma is ``re_sd`` whatever its shape, and only the shape is misspecified for
methods that assume normal random effects.

- ``normal``: z ~ N(0, 1) (the default; draws exactly what the study always drew);
- ``t<df>``, df > 2 (e.g. ``t3``): Student t with df degrees of freedom scaled by
  sqrt((df - 2) / df), whose variance is then 1 (Var t_df = df / (df - 2));
- ``bimodal``: an equal mixture of N(-0.8, 0.6^2) and N(+0.8, 0.6^2), variance
  0.8^2 + 0.6^2 = 1; two modes, because the means are more than two SDs apart (1.6 > 1.2);
- ``skewed``: (G - 2) / sqrt(2) with G ~ Gamma(shape 2, scale 1), which has mean 2 and
  variance 2; skewness 2 / sqrt(2) = sqrt(2).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

RE_DIST_FORMS = "normal, t<df> with df > 2 (e.g. t3), bimodal or skewed"
# t<df> with df > 2 as a JSON Schema / regex pattern: 2.x with a non-zero decimal, 3-9, 10+.
T_PATTERN = r"t(?:2\.\d*[1-9]\d*|[3-9](?:\.\d+)?|[1-9]\d+(?:\.\d+)?)"
RE_DIST_PATTERN = rf"normal|{T_PATTERN}|bimodal|skewed"

BIMODAL_MEAN, BIMODAL_SD = 0.8, 0.6
SKEWED_SHAPE = 2.0


def _t_degrees(re_dist: str) -> float | None:
    found = re.fullmatch(r"t(\d+(?:\.\d+)?)", re_dist)
    return float(found.group(1)) if found else None


def canonical_re_dist(value) -> str:
    """The one spelling of a random-effect distribution (``t5.0`` -> ``t5``).

    Raises
    ------
    ValueError
        If ``value`` is not one of ``normal``, ``t<df>`` with df > 2, ``bimodal``, ``skewed``.
    """
    if isinstance(value, str):
        if value in ("normal", "bimodal", "skewed"):
            return value
        degrees = _t_degrees(value)
        if degrees is not None and degrees > 2:
            text = repr(degrees)
            return "t" + (text[:-2] if text.endswith(".0") else text)
    raise ValueError(f"re_dist must be {RE_DIST_FORMS}; got {value!r}")


def standardized_draws(re_dist: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of the standardized distribution ``re_dist`` (mean 0, SD 1) from ``rng``.

    ``normal`` is ``rng.standard_normal(size)``: normal cells draw the same numbers as before the
    axis existed.
    """
    re_dist = canonical_re_dist(re_dist)
    if re_dist == "normal":
        return rng.standard_normal(size)
    if re_dist == "bimodal":
        side = np.where(rng.random(size) < 0.5, -1.0, 1.0)
        return BIMODAL_MEAN * side + BIMODAL_SD * rng.standard_normal(size)
    if re_dist == "skewed":
        return (rng.standard_gamma(SKEWED_SHAPE, size) - SKEWED_SHAPE) / math.sqrt(SKEWED_SHAPE)
    degrees = _t_degrees(re_dist)
    return rng.standard_t(degrees, size) * math.sqrt((degrees - 2) / degrees)


@dataclass(frozen=True)
class StandardizedMoments:
    """Mean, SD, skewness and excess kurtosis of a standardized random-effect distribution."""

    mean: float
    sd: float
    skewness: float
    excess_kurtosis: float


def standardized_moments(re_dist: str) -> StandardizedMoments:
    """The exact moments of ``re_dist`` (NaN or inf where they do not exist).

    t_df: skewness 0 for df > 3, excess kurtosis 6 / (df - 4) for df > 4 (inf for 2 < df <= 4).
    bimodal: E z^4 = m^4 + 6 m^2 s^2 + 3 s^4 with m = 0.8, s = 0.6, so excess kurtosis -0.8192.
    skewed: Gamma(k) has skewness 2 / sqrt(k) and excess kurtosis 6 / k (k = 2).
    """
    re_dist = canonical_re_dist(re_dist)
    if re_dist == "normal":
        return StandardizedMoments(0.0, 1.0, 0.0, 0.0)
    if re_dist == "bimodal":
        m, s = BIMODAL_MEAN, BIMODAL_SD
        return StandardizedMoments(0.0, 1.0, 0.0, m**4 + 6 * m**2 * s**2 + 3 * s**4 - 3)
    if re_dist == "skewed":
        return StandardizedMoments(0.0, 1.0, 2 / math.sqrt(SKEWED_SHAPE), 6 / SKEWED_SHAPE)
    degrees = _t_degrees(re_dist)
    skewness = 0.0 if degrees > 3 else math.nan
    kurtosis = 6 / (degrees - 4) if degrees > 4 else math.inf
    return StandardizedMoments(0.0, 1.0, skewness, kurtosis)
