# Reference for glmmshrink.fit_betabinomial: VGAM's maximum-likelihood beta-binomial fit.
# Run from the repository root (after python tests/data/make_reference_inputs.py):
#   Rscript tests/data/make_betabinomial_reference.R > tests/data/betabinomial_reference.json
#
# vglm(cbind(y, n - y) ~ 1, betabinomial) with its default links logitlink(mu), logitlink(rho), and
# Fisher scoring run to epsilon = 1e-12 (at most 200 iterations). VGAM works on logit(rho), so it
# cannot reach rho = 0: where the MLE is on that boundary it stops at some small rho (or fails),
# and the test compares log-likelihoods there instead. Datasets with one trial per group are left
# out: rho is not identified when every n_i = 1.
suppressPackageStartupMessages({library(VGAM); library(jsonlite)})

inputs <- fromJSON("tests/data/reference_inputs.json", simplifyVector = FALSE)
out <- list()
for (d in inputs$datasets) {
  y <- unlist(d$y); n <- unlist(d$n)
  if (all(n == 1)) next
  frame <- data.frame(y = y, n = n)
  fit <- tryCatch(suppressWarnings(
    vglm(cbind(y, n - y) ~ 1, betabinomial, data = frame,
         control = vglm.control(epsilon = 1e-12, maxit = 200))),
    error = function(e) NULL)
  entry <- list(name = d$name, y = y, n = n, failed = is.null(fit))
  if (!is.null(fit)) {
    estimates <- Coef(fit)
    entry <- c(entry, list(mu = unname(estimates["mu"]), rho = unname(estimates["rho"]),
                           loglik = as.numeric(logLik(fit)), iterations = fit@iter,
                           # check: the same log-likelihood from dbetabinom, with log C(n, y)
                           loglik_dbetabinom = sum(dbetabinom(y, n, prob = estimates["mu"],
                                                              rho = estimates["rho"], log = TRUE))))
  }
  message(sprintf("%s: %s", d$name, if (is.null(fit)) "failed" else
    sprintf("mu %.6f rho %.3g loglik %.6f, %d iterations", entry$mu, entry$rho, entry$loglik, entry$iterations)))
  out[[length(out) + 1]] <- entry
}
meta <- list(R = R.version.string, VGAM = as.character(packageVersion("VGAM")),
             model = "vglm(cbind(y, n - y) ~ 1, betabinomial, control = vglm.control(epsilon = 1e-12, maxit = 200))",
             fields = "mu, rho = Coef(fit); loglik = logLik(fit), which includes sum log C(n_i, y_i)")
cat(toJSON(list(meta = meta, datasets = out), digits = NA, auto_unbox = TRUE))
