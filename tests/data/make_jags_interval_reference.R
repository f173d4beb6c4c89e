# Long JAGS runs with credible intervals for tests/data/jags_interval_reference.json.
#
# Model (the seed thread's "flat priors", as in jags_reference.json):
#   y_i ~ Binomial(n_i, expit(beta + b_i)),  b_i ~ N(0, sigma^2),
#   beta ~ dnorm(0, 1e-8) (precision),  sigma ~ dunif(0, 100).
# Sampler: JAGS's default (exact) samplers, 4 chains, 10,000 burn-in iterations after adaptation,
# then 500,000 iterations per chain thinned by 2: 250,000 saved draws per chain, 1,000,000 in all.
# The glm module is NOT loaded: its binomial sampler (AuxMixBinomial) replaces the logistic
# likelihood by a finite normal-mixture approximation (Fruhwirth-Schnatter et al. 2009), which
# shifted beta's posterior mean by 9 MCSE on the unbalanced dataset (n_i up to 50) in a trial run.
#
# For every group: posterior mean of p_i = expit(beta + b_i) and its 2.5 % / 97.5 % quantiles;
# for beta: mean, SD and 2.5 % / 97.5 % quantiles; for sigma: mean, SD and quantiles.
# Monte Carlo SEs:
#   * of a mean: batch means, batches of floor(sqrt(N)) consecutive saved draws within each chain,
#     pooled over the 4 chains: MCSE = sqrt(B var(batch means) / N_total).
#   * of a quantile q_a (Flegal & Jones 2011, "Implementing MCMC: estimating with confidence",
#     Handbook of MCMC ch. 7; Doss, Flegal, Jones & Neath 2014, EJS 8:2448): the batch-means MCSE
#     of the indicator 1{x <= q_a} divided by the posterior density at q_a, f(q_a), from a
#     Gaussian kernel density estimate with Silverman's bandwidth (bw.nrd0) over all draws:
#     MCSE(q_a) = MCSE(mean 1{x <= q_a}) / f(q_a).
# Datasets: four drawn by glmmshrink.simulate.simulate_replicates under the study's master seed
# 20240611 (config.yaml), chosen to hold groups at or next to y = 0 and y = n; and three from
# jags_reference.json (the issue's examples: seed_question_1001 with y = 9/10 and 10/10,
# few_groups_1007 with I = 5 and y = 9/10; rare_events_1024 with many y = 0 of 20).
#
# Run: Rscript tests/data/make_jags_interval_reference.R [output.json]   (about 20 min, one core)
# JAGS 4.3.1, rjags 4-13, R 4.2.2.

suppressMessages(library(rjags))
library(jsonlite)

args <- commandArgs(TRUE)
output <- if (length(args)) args[1] else "tests/data/jags_interval_reference.json"

datasets <- list(
  list(id = "sim_seed_design_r0",
       source = "simulate_replicates(Cell(30, 10, 10, 1.0, 0.7), 20240611, 0, 1): one y = 0, two y = n, three y = n - 1",
       y = c(5, 8, 8, 10, 7, 10, 7, 5, 8, 8, 4, 5, 6, 0, 6, 4, 6, 8, 8, 9, 9, 6, 6, 9, 6, 6, 7, 8, 5, 4),
       n = rep(10, 30)),
  list(id = "sim_I5_r1",
       source = "simulate_replicates(Cell(5, 10, 10, 1.0, 0.7), 20240611, 1, 2): y = n and y = n - 1 (replicate 0 has no y = n)",
       y = c(6, 9, 7, 10, 5), n = rep(10, 5)),
  list(id = "sim_sd015_r1",
       source = "simulate_replicates(Cell(30, 10, 10, 0.15, 0.7), 20240611, 1, 2): near-singular, one y = n, three y = n - 1",
       y = c(6, 3, 6, 9, 9, 7, 7, 9, 7, 7, 6, 6, 10, 4, 6, 6, 7, 7, 8, 5, 8, 5, 5, 8, 4, 7, 6, 7, 7, 6),
       n = rep(10, 30)),
  list(id = "sim_unbalanced_r2",
       source = "simulate_replicates(Cell(30, 2, 50, 1.0, 0.5), 20240611, 2, 3): y = 0 of 3, y = n of 2, y = 1 of 21",
       y = c(10, 41, 3, 26, 7, 11, 3, 3, 36, 5, 26, 9, 11, 2, 11, 4, 2, 11, 13, 19, 10, 9, 29, 17, 14, 10, 24, 1, 0, 6),
       n = c(32, 50, 5, 50, 40, 16, 21, 7, 44, 17, 50, 23, 44, 2, 30, 19, 4, 25, 19, 41, 46, 25, 42, 25, 49, 23, 35, 21, 3, 15)),
  list(id = "seed_question_1001", source = "jags_reference.json",
       y = c(9, 6, 6, 1, 6, 6, 6, 8, 2, 3, 5, 8, 2, 7, 9, 8, 10, 5, 4, 9, 8, 6, 9, 9, 8, 5, 2, 8, 6, 3),
       n = rep(10, 30)),
  list(id = "few_groups_1007", source = "jags_reference.json", y = c(7, 9, 7, 7, 4), n = rep(10, 5)),
  list(id = "rare_events_1024", source = "jags_reference.json",
       y = c(0, 1, 0, 0, 3, 0, 1, 6, 1, 1, 0, 0, 2, 1, 1, 5, 0, 1, 0, 0, 0, 2, 2, 7, 0, 1, 1, 2, 1, 1,
             0, 1, 1, 0, 7, 1, 3, 0, 1, 0, 1, 1, 0, 0, 5, 2, 1, 1, 0, 3),
       n = rep(20, 50))
)

model_text <- "model {
  for (i in 1:I) {
    y[i] ~ dbin(p[i], n[i])
    logit(p[i]) <- beta + b[i]
    b[i] ~ dnorm(0, tau)
  }
  beta ~ dnorm(0, 1.0E-8)
  sigma ~ dunif(0, 100)
  tau <- 1 / (sigma * sigma)
}"

N_CHAINS <- 4
BURN_IN <- 10000
SAVED <- 250000
THIN <- 2
PROBS <- c(0.025, 0.975)

batch_means_se <- function(chains) {
  # chains: list of numeric vectors (one per chain, equal length)
  size <- floor(sqrt(length(chains[[1]])))
  means <- unlist(lapply(chains, function(x) {
    k <- length(x) %/% size
    colMeans(matrix(x[seq_len(k * size)], nrow = size))
  }))
  sqrt(size * var(means) / sum(lengths(chains)))
}

summarise <- function(chains) {
  all <- unlist(chains)
  q <- unname(quantile(all, PROBS, type = 7))
  bw <- bw.nrd0(all)
  q_se <- vapply(seq_along(q), function(k) {
    density <- mean(dnorm((q[k] - all) / bw)) / bw
    batch_means_se(lapply(chains, function(x) as.numeric(x <= q[k]))) / density
  }, 0.0)
  list(mean = mean(all), mean_mcse = batch_means_se(chains), sd = sd(all),
       lower = q[1], upper = q[2], lower_mcse = q_se[1], upper_mcse = q_se[2])
}

# Datasets already in the output are kept (a long run can be resumed).
results <- if (file.exists(output)) fromJSON(output, simplifyVector = FALSE)$datasets else list()
done <- vapply(results, function(r) r$id, "")
for (d in datasets) {
  if (d$id %in% done) next
  started <- Sys.time()
  inits <- lapply(seq_len(N_CHAINS), function(k) list(.RNG.name = "base::Mersenne-Twister", .RNG.seed = 1000 + k,
                                                      beta = c(-1, 0, 1, 0.5)[k], sigma = c(0.5, 1, 2, 0.2)[k]))
  model <- jags.model(textConnection(model_text), list(y = d$y, n = d$n, I = length(d$y)),
                      inits = inits, n.chains = N_CHAINS, n.adapt = 2000, quiet = TRUE)
  update(model, BURN_IN, progress.bar = "none")
  draws <- coda.samples(model, c("beta", "sigma", "p"), SAVED * THIN, thin = THIN, progress.bar = "none")
  column <- function(name) lapply(draws, function(chain) as.numeric(chain[, name]))
  groups <- lapply(seq_along(d$y), function(i) summarise(column(sprintf("p[%d]", i))))
  beta <- summarise(column("beta"))
  sigma <- summarise(column("sigma"))
  pick <- function(field) vapply(groups, function(g) g[[field]], 0.0)
  results[[length(results) + 1]] <- list(
    id = d$id, source = d$source, y = d$y, n = d$n,
    p_mean = pick("mean"), p_mean_mcse = pick("mean_mcse"),
    p_lower = pick("lower"), p_lower_mcse = pick("lower_mcse"),
    p_upper = pick("upper"), p_upper_mcse = pick("upper_mcse"),
    beta_mean = beta$mean, beta_mean_mcse = beta$mean_mcse, beta_sd = beta$sd,
    beta_lower = beta$lower, beta_lower_mcse = beta$lower_mcse,
    beta_upper = beta$upper, beta_upper_mcse = beta$upper_mcse,
    sigma_mean = sigma$mean, sigma_mean_mcse = sigma$mean_mcse, sigma_sd = sigma$sd,
    sigma_lower = sigma$lower, sigma_lower_mcse = sigma$lower_mcse,
    sigma_upper = sigma$upper, sigma_upper_mcse = sigma$upper_mcse,
    gelman_rubin_max = max(gelman.diag(draws, autoburnin = FALSE, multivariate = FALSE)$psrf[, 1]),
    draws = N_CHAINS * SAVED
  )
  rm(draws); gc(verbose = FALSE)
  cat(sprintf("%s: %.0f s\n", d$id, as.numeric(difftime(Sys.time(), started, units = "secs"))))
  meta <- list(
    model = "y_i ~ Bin(n_i, expit(beta + b_i)), b_i ~ N(0, sigma^2), beta ~ dnorm(0, 1e-8) (precision), sigma ~ dunif(0, 100)",
    sampler = sprintf("JAGS %s, default samplers (no glm module), %d chains, 2000 adaptation + %d burn-in, %d iterations per chain thinned by %d (%d saved draws per chain)",
                      "4.3.1", N_CHAINS, BURN_IN, SAVED * THIN, THIN, SAVED),
    quantiles = "type 7 over all saved draws; p_lower/p_upper are the 2.5 % / 97.5 % quantiles of p_i",
    mcse = "means: batch means (batch size floor(sqrt(N)) per chain, pooled); quantiles: batch-means MCSE of the indicator 1{x <= q} divided by a Gaussian KDE (bw.nrd0) of the draws at q",
    script = "tests/data/make_jags_interval_reference.R"
  )
  write_json(list(meta = meta, datasets = results), output, digits = NA, auto_unbox = TRUE, pretty = TRUE)
}
