# Produces tests/data/lme4_se_reference.json: lme4's standard error of the fixed intercept
# (and the summary-table numbers a glmer user sees) for a few datasets of lme4_reference.json.
#
# Run from the repository root:  Rscript tests/data/make_lme4_se_reference.R
# Needs R with lme4 and jsonlite (Debian: apt-get install r-base-core r-cran-lme4).
#
# Fits use the same tight settings as lme4_reference.json's `laplace` entries (nloptwrap with
# xtol_abs 1e-13, ftol_abs 1e-15, tolPwrss 1e-12), so the optimum is lme4's to ~2e-5.
# vcov() on a glmer fit defaults to use.hessian = TRUE: the inverse of the finite-difference
# Hessian of the deviance over (theta, beta), beta block, times 2. `se_rx` is the alternative
# use.hessian = FALSE value, sqrt(unsc) from PIRLS conditional on theta.
#
# Singular fits (theta = 0 exactly): lme4 computes that Hessian with deriv12() *without* bounds, so
# the central difference in theta steps to theta = -1e-4, where the deviance equals its value at
# +1e-4 (it is even in theta). The theta-beta cross term is then zero and the beta block of the
# inverse is 1 / (beta-only curvature): the binomial GLM's SE at sigma = 0. `se_glm` records that
# SE from glm() itself; `hessian` is lme4's finite-difference deviance Hessian over (theta, beta).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

reference <- fromJSON("tests/data/lme4_reference.json", simplifyVector = FALSE)
wanted <- c("seed_question_1001", "few_groups_1007", "unbalanced_1013", "big_sd_1023",
            "small_sd_1009", "J1_bernoulli_1018", "rare_events_1024", "J1_bernoulli_1005")
agq_wanted <- c("seed_question_1001", "unbalanced_1013", "small_sd_1009", "J1_bernoulli_1018",
                "J1_bernoulli_1005")
bernoulli_wanted <- c("seed_question_1001", "few_groups_1007")

tight <- glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-12,
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, maxeval = 1e5))

summarise_fit <- function(fit, glm_se) {
  aic_table <- summary(fit)$AICtab
  list(
    beta = unname(fixef(fit)[1]),
    sigma = unname(getME(fit, "theta")[1]),
    se = sqrt(vcov(fit)[1, 1]),
    se_rx = sqrt(suppressWarnings(vcov(fit, use.hessian = FALSE))[1, 1]),
    loglik = as.numeric(logLik(fit)),
    AIC = unname(aic_table["AIC"]), BIC = unname(aic_table["BIC"]),
    deviance = unname(aic_table["deviance"]), df_resid = unname(aic_table["df.resid"]),
    nobs = nobs(fit), singular = isSingular(fit),
    hessian = unname(fit@optinfo$derivs$Hessian), se_glm = glm_se
  )
}

out <- list()
for (ds in reference$datasets) {
  if (!(ds$id %in% wanted)) next
  y <- unlist(ds$y); n <- unlist(ds$n); g <- factor(seq_along(y))
  entry <- list(id = ds$id, y = y, n = n)
  glm_se <- sqrt(vcov(glm(cbind(y, n - y) ~ 1, family = binomial))[1, 1])
  fit <- glmer(cbind(y, n - y) ~ (1 | g), family = binomial, control = tight)
  entry$laplace <- summarise_fit(fit, glm_se)
  if (ds$id %in% agq_wanted) {
    fit25 <- glmer(cbind(y, n - y) ~ (1 | g), family = binomial, nAGQ = 25, control = tight)
    entry$agq25 <- summarise_fit(fit25, glm_se)
  }
  if (ds$id %in% bernoulli_wanted) {
    rows <- data.frame(g = factor(rep(seq_along(y), n)),
                       result = unlist(mapply(function(s, t) c(rep(1, s), rep(0, t - s)), y, n,
                                                SIMPLIFY = FALSE)))
    fit_rows <- glmer(result ~ (1 | g), data = rows, family = binomial, control = tight)
    entry$bernoulli_rows <- summarise_fit(fit_rows, glm_se)
  }
  out[[length(out) + 1]] <- entry
}

meta <- list(
  generator = "tests/data/make_lme4_se_reference.R",
  lme4 = as.character(packageVersion("lme4")),
  R = R.version.string,
  note = paste("se: sqrt(vcov(fit)[1,1]) with lme4's default use.hessian = TRUE;",
               "se_rx: use.hessian = FALSE; loglik/AIC/BIC/deviance/df_resid/nobs as summary() prints;",
               "bernoulli_rows: the same model fitted on expanded 0/1 rows;",
               "hessian: optinfo$derivs$Hessian, lme4's finite-difference deviance Hessian over",
               "(theta, beta); se_glm: SE of glm(cbind(y, n - y) ~ 1, binomial), which lme4's",
               "vcov reproduces at a singular fit (theta = 0)")
)
writeLines(toJSON(list(meta = meta, datasets = out), auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/data/lme4_se_reference.json")
