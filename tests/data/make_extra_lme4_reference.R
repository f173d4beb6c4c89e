# Extra lme4 reference fits for hard cases found while fuzzing fit_glmm.
# Same settings as ../shared/reference (nloptwrap xtol_abs 1e-13, ftol_abs 1e-15, tolPwrss 1e-12).
# Run: Rscript tests/data/make_extra_lme4_reference.R > tests/data/extra_lme4_reference.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
cases <- list(
  rare_big_sd_agq = list(
    y = c(0,0,0,0,0,0,2,2,0,0,0,0,0,1,4,0,1,0,0,0,10,0,0,0,0,0,9,0,0,0), n = rep(10, 30)),
  tiny_J_big_sd = list(y = c(2,1,0,0,0,2,2,0,0,0), n = rep(2, 10)),
  near_separation = list(y = c(9, rep(10, 29)), n = rep(10, 30)),
  bernoulli_two_successes = list(y = c(rep(0, 9), 1, rep(0, 9), 1), n = rep(1, 20)),
  quasi_separated_J2 = list(y = c(0, 0, 0, 0, 0, 0, 0, 2, 0, 0), n = rep(2, 10))
)
ctl <- glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-12,
                    optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, maxeval = 1e5))
fit_one <- function(d, nagq) {
  g <- factor(seq_along(d$y))
  f <- suppressMessages(suppressWarnings(
    glmer(cbind(d$y, d$n - d$y) ~ (1 | g), family = binomial, nAGQ = nagq, control = ctl)))
  list(beta = unname(fixef(f)), sigma = unname(getME(f, "theta")), loglik = as.numeric(logLik(f)),
       modes = unname(ranef(f)$g[[1]]), singular = isSingular(f))
}
out <- lapply(names(cases), function(id) {
  d <- cases[[id]]
  list(id = id, y = d$y, n = d$n, laplace = fit_one(d, 1), agq25 = fit_one(d, 25))
})
cat(toJSON(list(meta = list(lme4 = as.character(packageVersion("lme4")), R = R.version.string),
                datasets = out), digits = NA, auto_unbox = TRUE, pretty = TRUE))
