# Reference for glmmshrink.fit_pql: the fixed point of MASS::glmmPQL on the 0/1 rows of the counts.
# Run from the repository root (after python tests/data/make_reference_inputs.py):
#   Rscript tests/data/make_pql_reference.R > tests/data/pql_reference.json
#
# glmmPQL(result ~ 1, random = ~ 1 | g, family = binomial) stops when
# sum((eta - etaold)^2) < 1e-6 * sum(eta^2) or after niter = 10 lme fits, which can leave it
# ~1e-3 short of its fixed point on rare-event data. `pql_tight` below is MASS's own function with
# exactly that one line changed to max(abs(eta - etaold)) < 1e-9 (asserted below; it also records
# that change in `last_change`), called with niter = 300; lme's inner optimiser is tightened through
# lmeControl (nlminb rel.tol, msTol, tolerance). lme's own optimiser noise (~1e-9 in eta) keeps a
# tighter rule from ever triggering. On a few rare-event datasets the plain iteration cycles (sigma
# jumps between 0 and ~2 on alternate fits) and never settles; there `pql_damped`, the same
# function with the update eta <- fitted(fit) + off also replaced by
# eta <- etaold + 0.5 * (fitted(fit) + off - etaold), finds the fixed point (damping does not move
# fixed points) and the entry is marked damped = TRUE. Everything else -- glm starting values,
# working response and weights, varFixed(~invwt), method = "ML" -- is glmmPQL's code verbatim. The default glmmPQL fit is stored beside it
# (`glmmPQL_default`) to show how far the default stopping rule lands from the fixed point.
suppressPackageStartupMessages({library(MASS); library(nlme); library(jsonlite)})

body_lines <- deparse(body(MASS::glmmPQL))
old_rule <- "if (sum((eta - etaold)^2) < 1e-06 * sum(eta^2)) "
hit <- which(trimws(body_lines) == trimws(old_rule))
stopifnot(length(hit) == 1)
body_lines[hit] <- sub(trimws(old_rule), "if ({last_change <<- max(abs(eta - etaold)); last_change < 1e-9}) ", body_lines[hit], fixed = TRUE)
pql_tight <- MASS::glmmPQL
body(pql_tight) <- parse(text = body_lines, keep.source = FALSE)[[1]]
last_change <- NA_real_  # global, so the patched line's <<- lands here

old_update <- "eta <- fitted(fit) + off"
hit <- which(trimws(body_lines) == old_update)
stopifnot(length(hit) == 1)
body_lines[hit] <- sub(old_update, "eta <- etaold + 0.5 * (fitted(fit) + off - etaold)", body_lines[hit],
                       fixed = TRUE)
pql_damped <- MASS::glmmPQL
body(pql_damped) <- parse(text = body_lines, keep.source = FALSE)[[1]]

tight_control <- lmeControl(maxIter = 500, msMaxIter = 500, msMaxEval = 2000, niterEM = 50,
                            tolerance = 1e-13, msTol = 1e-14, rel.tol = 1e-15, x.tol = 1e-13,
                            returnObject = TRUE)

rows_of <- function(y, n) {
  g <- rep(seq_along(n), n)
  result <- unlist(mapply(function(yi, ni) c(rep(1, yi), rep(0, ni - yi)), y, n, SIMPLIFY = FALSE))
  data.frame(result = result, g = factor(g, levels = seq_along(n)))
}

summarise <- function(fit, G) {
  b <- ranef(fit)[, 1]
  names(b) <- rownames(ranef(fit))
  b_full <- rep(NA_real_, G)  # every group has rows here, so no NA survives
  b_full[as.integer(names(b))] <- b
  list(beta = unname(fixef(fit)[1]),
       # VarCorr() formats to 7 digits; the relative precision factor is exact.
       sigma = fit$sigma * sqrt(as.matrix(fit$modelStruct$reStruct[[1]])[1, 1]),
       residual_sd = fit$sigma,
       b = b_full)
}

inputs <- fromJSON("tests/data/reference_inputs.json", simplifyVector = FALSE)
out <- list()
for (d in inputs$datasets) {
  y <- unlist(d$y); n <- unlist(d$n)
  rows <- rows_of(y, n)
  started <- proc.time()[[3]]
  run <- function(pql, niter) {
    iterations <<- 0
    last_change <<- NA_real_
    tryCatch(suppressWarnings(withCallingHandlers(
      pql(result ~ 1, random = ~ 1 | g, family = binomial, data = rows,
          niter = niter, control = tight_control, verbose = TRUE),
      message = function(m) {iterations <<- iterations + 1; invokeRestart("muffleMessage")})),
      error = function(e) NULL)
  }
  fit <- run(pql_tight, 300)
  damped <- FALSE
  if (!all(n == 1) && !is.null(fit) && !(last_change < 1e-9)) {
    fit <- run(pql_damped, 600)
    damped <- TRUE
  }
  # On 0/1 data with J = 1 the working LMM interpolates (residual SD -> 0) and glmmPQL diverges.
  diverged <- is.null(fit) || !is.finite(fixef(fit)[1]) || abs(fixef(fit)[1]) > 1e3
  entry <- list(name = d$name, y = y, n = n, diverged = diverged, damped = damped,
                lme_fits = iterations, last_change = last_change)
  if (!diverged) {
    default_fit <- suppressWarnings(suppressMessages(
      glmmPQL(result ~ 1, random = ~ 1 | g, family = binomial, data = rows, verbose = FALSE)))
    entry <- c(entry, summarise(fit, length(n)),
               list(glmmPQL_default = summarise(default_fit, length(n))))
  }
  message(sprintf("%s: %d lme fits%s, last max|d eta| %.2g, %.1f s", d$name, iterations,
                  if (damped) " (damped)" else "", last_change, proc.time()[[3]] - started))
  out[[length(out) + 1]] <- entry
}
meta <- list(
  R = R.version.string, MASS = as.character(packageVersion("MASS")),
  nlme = as.character(packageVersion("nlme")),
  model = "glmmPQL(result ~ 1, random = ~1 | g, family = binomial) on 0/1 rows, iterated to max|d eta| < 1e-9 (patched glmmPQL, niter = 300, tight lmeControl)",
  fields = "beta = fixef, sigma = random-intercept StdDev, residual_sd = fit$sigma (sqrt of the dispersion), b = ranef per group")
cat(toJSON(list(meta = meta, datasets = out), digits = NA, auto_unbox = TRUE))
