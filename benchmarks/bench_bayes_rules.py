"""Fewer outer nodes for posterior_glmm: what each coarser rule saves and what it costs in accuracy.

Run:  PYTHONPATH=. python benchmarks/bench_bayes_rules.py   (about a minute)

Issue 11 suggests fewer outer nodes where the posterior is smooth. Each candidate rule below
changes one part of ``bayes.DEFAULT_RULE``; every rule, the default included, is compared with
the refined rule of ``tests/test_bayes.py`` (12 + 24 + 28 + 24 sigma nodes, 17 beta nodes,
27 group nodes, wider panels) on simulated datasets of the study's designs, and the largest
absolute difference of each posterior summary over all datasets and groups is printed with the
rule's CPU time (one core). The default rule's own differences show the margin there is:
tests/test_bayes.py allows 1e-5 on the means and 5e-5 on the interval ends. The small-sd designs
(wide, skewed posteriors of log sigma) are where the bulk panel's node count matters.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from glmmshrink.bayes import DEFAULT_RULE, _posterior_glmm  # noqa: E402
from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.simulate import simulate_replicates  # noqa: E402

REFINED = replace(DEFAULT_RULE, sigma_near_zero=12, log_sigma_tail=24, log_sigma_bulk=28, beta=17,
                  group=27, left_drop=20.0, right_drop=32.0, prune_drop=30.0)
CANDIDATES = {
    "default": DEFAULT_RULE,
    "sigma bulk 18 (until now)": replace(DEFAULT_RULE, log_sigma_bulk=18),
    "sigma bulk 12, tails 7": replace(DEFAULT_RULE, log_sigma_bulk=12, log_sigma_tail=7),
    "sigma tails 6, near 0 4": replace(DEFAULT_RULE, log_sigma_tail=6, sigma_near_zero=4),
    "beta 7": replace(DEFAULT_RULE, beta=7),
    "prune at e^-18": replace(DEFAULT_RULE, prune_drop=18.0),
}
DESIGNS = {
    "seed J=10 sd=1": Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7),
    "J=5 sd=0.5": Cell(n_groups=30, n_trials_min=5, n_trials_max=5, re_sd=0.5, p0=0.5),
    "J=20 sd=0.25": Cell(n_groups=30, n_trials_min=20, n_trials_max=20, re_sd=0.25, p0=0.5),
    "J=20 sd=0": Cell(n_groups=30, n_trials_min=20, n_trials_max=20, re_sd=0.0, p0=0.5),
    "J=50 sd=0.7": Cell(n_groups=30, n_trials_min=50, n_trials_max=50, re_sd=0.7, p0=0.5),
    "J=100 sd=1": Cell(n_groups=30, n_trials_min=100, n_trials_max=100, re_sd=1.0, p0=0.7),
    "J=10 sd=2": Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=2.0, p0=0.7),
    "unbalanced 2..50": Cell(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5),
    "I=5 J=10": Cell(n_groups=5, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7),
}
FIELDS = ("beta_mean", "sigma_mean", "p_mean", "p_sd", "p_lower", "p_upper", "beta_lower", "beta_upper")
REPLICATES = 24
SEED = 20240611  # the default study's master seed


def posterior(counts, rule):
    return _posterior_glmm(counts.y, counts.n, "flat", ("uniform", 100.0), rule)


def main() -> None:
    data = {name: simulate_replicates(cell, SEED, 0, REPLICATES) for name, cell in DESIGNS.items()}
    reference = {name: posterior(counts, REFINED) for name, counts in data.items()}
    print(f"largest |difference| from the refined rule over {len(DESIGNS)} designs x {REPLICATES} "
          "replicates (proper ones), and CPU s of one core")
    print(f"{'rule':<26} {'CPU s':>6}  " + "  ".join(f"{field:>10}" for field in FIELDS))
    for name, rule in CANDIDATES.items():
        worst = dict.fromkeys(FIELDS, 0.0)
        cpu = 0.0
        for design, counts in data.items():
            began = time.process_time()
            result = posterior(counts, rule)
            cpu += time.process_time() - began
            for field in FIELDS:
                difference = np.abs(getattr(result, field) - getattr(reference[design], field))
                worst[field] = max(worst[field], float(np.nanmax(difference, initial=0.0)))
        print(f"{name:<26} {cpu:6.2f}  " + "  ".join(f"{worst[field]:10.1e}" for field in FIELDS))


if __name__ == "__main__":
    main()
