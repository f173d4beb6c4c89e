"""Size of the boundary LRT of sigma = 0 at sd = 0 (Laplace fits) by number of groups I.

Run: PYTHONPATH=. python benchmarks/lrt_size.py (about 10 s). Shows that the 50:50 chi^2_0:chi^2_1
null is conservative at I = 30 groups and approaches its nominal 5 % slowly as I grows.
"""


from glmmshrink import fit_glmm, measures
from glmmshrink.config import Cell
from glmmshrink.intervals import binomial_null_loglik, boundary_lrt_pvalue, boundary_lrt_statistic
from glmmshrink.simulate import simulate_replicates

for groups in (30, 100, 300):
    for trials in (10, 50):
        data = simulate_replicates(Cell(n_groups=groups, n_trials_min=trials, n_trials_max=trials, re_sd=0.0, p0=0.5), 20240611, 0, 2000)
        fit = fit_glmm(data.y, data.n, nagq=1)
        null = binomial_null_loglik(data.y, data.n)
        statistic = boundary_lrt_statistic(fit.loglik, null)
        rate = measures.rejection_rate(boundary_lrt_pvalue(fit.loglik, null))
        at_zero = measures.proportion(statistic == 0)
        tail = measures.proportion(statistic[statistic > 0] > 2.7055)
        print(f"I={groups:3d} J={trials:2d} size {rate.value:.4f} ± {rate.mcse:.4f}  "
              f"P(T=0) {at_zero.value:.3f} ± {at_zero.mcse:.3f}  P(T>2.71|T>0) {tail.value:.3f} ± {tail.mcse:.3f}")
