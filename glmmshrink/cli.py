"""Command line: ``glmmshrink fit`` for one's own data, ``glmmshrink demo`` to see shrinkage.

``glmmshrink fit data.csv --response result --group subject`` reads 0/1 rows (one trial per
row) and fits ``glmer(result ~ 1 + (1 | subject), family = binomial)``; with ``--trials n`` the
rows hold successes out of ``n`` trials, as
``glmer(cbind(result, n - result) ~ 1 + (1 | subject))``.
Rows are summed per group before fitting, which leaves the likelihood unchanged apart from its
constant; the printed logLik uses the constant glmer would use on the rows as given (see
:func:`printed_loglik`).

``main(argv)`` returns the exit code: 0 on success, 2 for bad input or usage, with a one-line
message on stderr and no traceback.

pandas, scipy.stats and the fitters are imported inside the commands that use them, so
``glmmshrink --help`` and usage errors answer without loading them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glmmshrink.config_limits import HARD_MAX_NAGQ, MAX_NAGQ, nagq_problem

if TYPE_CHECKING:
    import pandas as pd

    from glmmshrink.glmer_summary import GlmerSummary

EXIT_OK = 0
EXIT_USAGE = 2

# The seed question's design: I groups of J trials, success probability p0 at b = 0.
DEMO_GROUPS = 30
DEMO_TRIALS = 10
DEMO_P0 = 0.7
DEMO_RE_SD = 1.0


class InputError(ValueError):
    """Bad input data or options; reported on stderr with exit code 2."""


@dataclass(frozen=True)
class GroupedCounts:
    """Successes and trials per group, plus what the summary needs about the original rows."""

    group_labels: np.ndarray
    successes: np.ndarray
    trials: np.ndarray
    n_rows: int
    row_log_choose_sum: float  # sum over input rows of log C(n_r, y_r); 0 for 0/1 rows
    formula: str


def load_counts(path, response: str, group: str, trials: str | None = None) -> GroupedCounts:
    """Read a CSV and sum successes and trials per group.

    Without ``trials`` each row is one Bernoulli trial and ``response`` must be 0 or 1; with it,
    ``response`` counts successes out of the ``trials`` column. Raises :class:`InputError` naming
    the file, column or value that is wrong.
    """
    import pandas as pd

    from glmmshrink._objective import log_choose

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path} as CSV: {error}") from None
    used = [response, group] + ([trials] if trials is not None else [])
    for column in used:
        if column not in table.columns:
            available = ", ".join(map(str, table.columns))
            raise InputError(
                f"column '{column}' not found in {path}; available columns: {available}"
            )
    if len(set(used)) < len(used):
        raise InputError(
            f"--response, --group and --trials must name different columns, got {used}"
        )
    if table.empty:
        raise InputError(f"{path} has no data rows")
    for column in used:
        missing = table[column].isna()
        if missing.any():
            raise InputError(
                f"column '{column}' has {missing.sum()} missing value(s), first at data row "
                f"{int(np.flatnonzero(missing)[0]) + 1}"
            )
    successes = _whole_numbers(table[response], response)
    if trials is None:
        if not np.isin(successes, (0, 1)).all():
            bad = int(np.flatnonzero(~np.isin(successes, (0, 1)))[0])
            raise InputError(
                f"column '{response}' must be 0/1 per row without --trials, found "
                f"{table[response].iloc[bad]} at data row {bad + 1}; "
                "give --trials COLUMN for counts"
            )
        n_trials = np.ones_like(successes)
        formula = f"{response} ~ 1 + (1 | {group})"
    else:
        n_trials = _whole_numbers(table[trials], trials)
        if (successes > n_trials).any():
            bad = int(np.flatnonzero(successes > n_trials)[0])
            raise InputError(
                f"'{response}' exceeds '{trials}' at data row {bad + 1} "
                f"({successes[bad]} > {n_trials[bad]}): successes cannot exceed trials"
            )
        formula = f"cbind({response}, {trials} - {response}) ~ 1 + (1 | {group})"
    per_group = (
        pd.DataFrame({"group": table[group], "y": successes, "n": n_trials})
        .groupby("group", sort=True)[["y", "n"]]
        .sum()
    )
    empty = per_group.index[per_group["n"] == 0]
    if len(empty):
        raise InputError(f"group {empty[0]!r} of '{group}' has no trials (its '{trials}' sum to 0)")
    return GroupedCounts(
        group_labels=per_group.index.to_numpy(),
        successes=per_group["y"].to_numpy(np.int64),
        trials=per_group["n"].to_numpy(np.int64),
        n_rows=len(table),
        row_log_choose_sum=float(np.sum(log_choose(n_trials, successes))),
        formula=formula,
    )


def _whole_numbers(values: pd.Series, column: str) -> np.ndarray:
    """Column as int64, or InputError for text, negatives, non-integers and infinities."""
    import pandas as pd

    if values.dtype == bool:
        return values.to_numpy(np.int64)
    if not pd.api.types.is_numeric_dtype(values):
        not_numbers = pd.to_numeric(values, errors="coerce").isna().to_numpy()
        row = int(np.flatnonzero(not_numbers)[0]) if not_numbers.any() else 0
        raise InputError(
            f"column '{column}' must be numeric, found {str(values.iloc[row])!r} "
            f"at data row {row + 1}"
        )
    numbers = values.to_numpy(float)
    for problem, bad in (
        ("infinite", ~np.isfinite(numbers)),
        ("negative", numbers < 0),
        ("non-integer", numbers != np.round(numbers)),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"column '{column}' has a {problem} value {values.iloc[row]} "
                f"at data row {row + 1}"
            )
    return numbers.astype(np.int64)


def printed_loglik(fit_loglik: float, counts: GroupedCounts) -> float:
    """The logLik glmer prints for the rows as given.

    ``fit_glmm`` includes ``sum_g log C(n_g, y_g)`` over the summed groups; glmer includes
    ``sum_r log C(n_r, y_r)`` over its input rows, which is 0 for 0/1 rows (lme4 has no
    binomial-coefficient term for Bernoulli data). Swap one constant for the other.
    """
    from glmmshrink._objective import log_choose

    group_constant = float(np.sum(log_choose(counts.trials, counts.successes)))
    return fit_loglik - group_constant + counts.row_log_choose_sum


def summarise(fit, counts: GroupedCounts, group: str, nagq: int) -> GlmerSummary:
    """Build the glmer-style summary of a single-dataset ``fit_glmm`` result."""
    from glmmshrink.glmer_summary import GlmerSummary, intercept_se

    beta, sigma = float(fit.beta), float(fit.sigma)
    return GlmerSummary(
        formula=counts.formula,
        group_name=group,
        n_obs=counts.n_rows,
        n_groups=len(counts.group_labels),
        nagq=nagq,
        beta=beta,
        beta_se=intercept_se(counts.successes, counts.trials, beta, sigma, nagq),
        sigma=sigma,
        loglik=printed_loglik(float(fit.loglik), counts),
        converged=bool(fit.converged),
        singular=bool(fit.singular),
        separated=bool(fit.separated),
        max_grad=float(fit.max_grad),
    )


def group_table(fit, counts: GroupedCounts, group: str) -> pd.DataFrame:
    """Per-group estimates: counts, observed proportion, conditional mode and SD, p_hat."""
    import pandas as pd

    return pd.DataFrame(
        {
            group: counts.group_labels,
            "y": counts.successes,
            "n": counts.trials,
            "observed_p": counts.successes / counts.trials,
            "b": np.asarray(fit.b),
            "b_sd": np.asarray(fit.b_sd),
            "p_hat": np.asarray(fit.p_hat),
        }
    )


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _open_for_writing(path):
    """Open ``--out`` before the fit, so a bad path fails at once with the OS's reason."""
    try:
        return open(path, "w", newline="")
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(f"cannot write {path}: {reason}") from None


def _run_fit(args) -> int:
    from glmmshrink import fit_glmm

    counts = load_counts(args.data, args.response, args.group, args.trials)
    out_file = _open_for_writing(args.out) if args.out is not None else None
    fit = fit_glmm(counts.successes, counts.trials, nagq=args.nagq)
    print(summarise(fit, counts, args.group, args.nagq))
    if args.nagq > 1:
        print(
            "\nNote: logLik is the adaptive Gauss-Hermite marginal log-likelihood. On aggregated "
            "counts glmer prints a different value for nAGQ > 1 (it drops the binomial "
            "coefficients and subtracts the saturated log-likelihood)."
        )
    if out_file is not None:
        try:
            with out_file:
                group_table(fit, counts, args.group).to_csv(out_file, index=False)
        except OSError as error:
            raise InputError(f"cannot write {args.out}: {error.strerror or error}") from None
        print(f"\nPer-group estimates written to {args.out}")
    return EXIT_OK


def _run_demo(args) -> int:
    from glmmshrink import fit_glmm
    from glmmshrink._objective import log_choose
    from glmmshrink.config import Cell
    from glmmshrink.simulate import replicate_rng, simulate_replicate

    # Replicate 0 of the study's seed cell under master seed --seed: the pipeline's own data.
    cell = Cell(n_groups=DEMO_GROUPS, n_trials_min=DEMO_TRIALS, n_trials_max=DEMO_TRIALS,
                re_sd=DEMO_RE_SD, p0=DEMO_P0)
    trials, successes, p_true = simulate_replicate(cell, replicate_rng(args.seed, cell.key, 0))
    fit = fit_glmm(successes, trials, nagq=1)
    counts = GroupedCounts(
        group_labels=np.arange(1, DEMO_GROUPS + 1),
        successes=successes,
        trials=trials,
        n_rows=DEMO_GROUPS,
        row_log_choose_sum=float(np.sum(log_choose(trials, successes))),
        formula="cbind(y, n - y) ~ 1 + (1 | group)",
    )
    print(
        f"Simulated {DEMO_GROUPS} groups of {DEMO_TRIALS} trials, p0 = {DEMO_P0}, "
        f"random-intercept SD = {DEMO_RE_SD} (cell {cell.name}, replicate 0, seed {args.seed}).\n"
        "The GLMM estimate p_hat pulls each observed proportion toward the overall mean.\n"
    )
    table = group_table(fit, counts, "group").assign(true_p=p_true)
    columns = ["group", "y", "n", "true_p", "observed_p", "p_hat"]
    print(table[columns].to_string(index=False, float_format="%.3f"))
    print()
    print(summarise(fit, counts, "group", nagq=1))
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: the error and where to read the usage."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="glmmshrink",
        description="Binomial random-intercept GLMM fits (lme4's glmer optimum) and shrinkage.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="fit glmer(cbind(y, n - y) ~ 1 + (1 | group)) to a CSV file",
        description="Fit the binomial random-intercept GLMM to a CSV of 0/1 rows or of counts.",
    )
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument(
        "--response", required=True, help="0/1 outcome column, or successes with --trials"
    )
    fit.add_argument(
        "--group", required=True, help="grouping column (one random intercept per value)"
    )
    fit.add_argument("--trials", help="column of trials per row; omit for 0/1 rows")
    fit.add_argument(
        "--nagq",
        type=_whole_number(1),
        default=1,
        help="1 = Laplace (default); k > 1 = adaptive Gauss-Hermite with k nodes "
        f"(at most {MAX_NAGQ}, or {HARD_MAX_NAGQ} with --allow-large-nagq)",
    )
    fit.add_argument(
        "--allow-large-nagq",
        action="store_true",
        help=f"allow --nagq above {MAX_NAGQ} (up to {HARD_MAX_NAGQ}); more nodes rarely change "
        "the estimates",
    )
    fit.add_argument("--out", help="write per-group estimates to this CSV")
    fit.set_defaults(run=_run_fit, subparser=fit)

    demo = commands.add_parser(
        "demo",
        help="simulate one seed-design dataset and show the shrinkage",
        description=f"Simulate I = {DEMO_GROUPS} groups of J = {DEMO_TRIALS} trials "
        f"with p0 = {DEMO_P0} "
        f"and SD = {DEMO_RE_SD}, fit the GLMM and compare observed and estimated proportions.",
    )
    demo.add_argument(
        "--seed",
        type=_whole_number(0),
        default=2026,
        help="master seed; the data are replicate 0 of the study's seed cell (default 2026)",
    )
    demo.set_defaults(run=_run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "fit":
            problem = nagq_problem(args.nagq, args.allow_large_nagq,
                                   allowance="--allow-large-nagq")
            if problem:
                args.subparser.error(f"argument --nagq: {problem}")
    except SystemExit as stop:  # --help or a usage error; argparse has already printed
        return int(stop.code or 0)
    try:
        return args.run(args)
    except InputError as error:
        print(f"glmmshrink {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early; silence Python's exit-time flush
        # error the way the Python docs (signal module, "Note on SIGPIPE") recommend.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
