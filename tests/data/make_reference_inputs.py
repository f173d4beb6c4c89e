"""Datasets for the PQL and beta-binomial references (make_pql_reference.R and
make_betabinomial_reference.R).

Run from the repository root: python tests/data/make_reference_inputs.py
It writes tests/data/reference_inputs.json: the 26 datasets of lme4_reference.json plus replicates
of the study's simulator (glmmshrink.simulate) for the designs PQL and the beta-binomial fit find
hard: rare events, near-zero SD, unbalanced trials, few groups, J = 1 and J = 2, and a hand-made
underdispersed dataset whose beta-binomial MLE sits at rho = 0. Separated datasets (all y == 0 or
all y == n) are skipped: neither estimator has a finite answer for them.
"""

import json
from pathlib import Path

from glmmshrink.config import Cell
from glmmshrink.simulate import simulate_replicates

HERE = Path(__file__).parent
SEED = 20261127

DESIGNS = {  # name: (Cell, replicates wanted)
    "seed_design": (Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7), 3),
    "rare_p03": (Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.03), 3),
    "rare_p05_J20": (Cell(n_groups=30, n_trials_min=20, n_trials_max=20, re_sd=0.7, p0=0.05), 2),
    "rare_p04_big_sd": (Cell(n_groups=40, n_trials_min=10, n_trials_max=10, re_sd=2.0, p0=0.04), 2),
    "small_sd": (Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=0.1, p0=0.5), 3),
    "unbalanced": (Cell(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5), 2),
    "unbalanced_rare": (Cell(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.05), 2),
    "few_groups": (Cell(n_groups=5, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.5), 2),
    "J1": (Cell(n_groups=30, n_trials_min=1, n_trials_max=1, re_sd=1.0, p0=0.5), 2),
    "J2": (Cell(n_groups=30, n_trials_min=2, n_trials_max=2, re_sd=1.0, p0=0.3), 2),
}
# Picked by hand: rare-event replicates (master seed 3) on which glmmPQL's plain iteration cycles,
# sigma jumping between 0 and ~2 on alternate working fits, so its fixed point needs damped steps.
CYCLING = (Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.03), 3,
           (104, 282, 514, 972))


def main():
    lme4 = json.loads((HERE / "lme4_reference.json").read_text())
    datasets = [
        {"name": f"lme4_{d['scenario']['name']}_{k // 13}", "y": d["y"], "n": d["n"]}
        for k, d in enumerate(lme4["datasets"])
    ]
    for name, (cell, wanted) in DESIGNS.items():
        sim = simulate_replicates(cell, SEED, 0, 10 * wanted)
        kept = 0
        for replicate, y, n in zip(sim.replicate, sim.y, sim.n):
            if y.sum() in (0, n.sum()) or kept == wanted:
                continue
            datasets.append({"name": f"{name}_{replicate}", "y": y.tolist(), "n": n.tolist()})
            kept += 1
    cell, seed, replicates = CYCLING
    for replicate in replicates:
        sim = simulate_replicates(cell, seed, replicate, replicate + 1)
        datasets.append(
            {"name": f"cycling_{replicate}", "y": sim.y[0].tolist(), "n": sim.n[0].tolist()})
    # Underdispersed: every group near 5/10, so the beta-binomial MLE of rho is 0 (boundary).
    datasets.append(
        {"name": "underdispersed", "y": [5, 5, 4, 6, 5, 5, 5, 4, 6, 5] * 2, "n": [10] * 20})
    (HERE / "reference_inputs.json").write_text(json.dumps({"seed": SEED, "datasets": datasets}))


if __name__ == "__main__":
    main()
