"""Limits and option checks of a study config that JSON Schema cannot express.

Each check works on the raw config mapping, before the grid is expanded or a chunk list is built,
and costs O(number of grid blocks + axis values): a config asking for 10^12 replicates or a grid of
10^9 cells is rejected in microseconds, never by running out of memory while being expanded.

The limits (each also stated in ``workflow/schemas/config.schema.yaml``):

- ``MAX_CELLS`` cells in the grid (counted as the sum over blocks of the product of their axis
  lengths, an upper bound of the distinct cells);
- ``MAX_JOBS`` fitting jobs, cells x ceil(replicates / chunk_size): Snakemake builds one DAG node
  per job, and beyond ~10^5 the DAG alone takes minutes and gigabytes;
- ``MAX_DATASETS_PER_JOB`` simulated datasets x groups per fitting job,
  min(chunk_size, replicates) x n_groups: a job holds its chunk's (replicates, groups) arrays for
  every method in memory (about 0.5 GB at this limit with four methods);
- ``nagq`` at most ``MAX_NAGQ`` nodes, or ``HARD_MAX_NAGQ`` with ``allow_large_nagq: true``.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable, Mapping

from glmmshrink.grid import AXES

MAX_CELLS = 10_000
MAX_JOBS = 100_000
MAX_DATASETS_PER_JOB = 1_000_000

# Adaptive Gauss-Hermite with 25 nodes already agrees with 40 or 200 nodes to ~1e-13 on the
# seed design; beyond a few hundred nodes the rule's weights underflow and the fit breaks down.
MAX_NAGQ = 25
HARD_MAX_NAGQ = 100
# An option every method with a ``nagq`` option accepts; it is checked, then dropped before
# fitting, so setting it never changes a job's params (and never triggers a refit).
ALLOW_LARGE_NAGQ = "allow_large_nagq"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (difflib), or ``""``."""
    # Case-insensitive, so lme4's spelling nAGQ finds nagq.
    by_lower = {str(choice).lower(): str(choice) for choice in choices}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean '{by_lower[close[0]]}'?" if close else ""


def nagq_problem(nagq: Any, allow_large: bool = False, minimum: int = 1,
                 allowance: str = f"{ALLOW_LARGE_NAGQ}: true") -> str | None:
    """What is wrong with a number of quadrature nodes, or None if it is allowed.

    ``allowance`` is how the user allows more nodes (a config key or a command-line flag).
    """
    largest = HARD_MAX_NAGQ if allow_large else MAX_NAGQ
    if isinstance(nagq, bool) or not isinstance(nagq, int) or not minimum <= nagq <= largest:
        hint = (
            "" if allow_large or (isinstance(nagq, int) and nagq > HARD_MAX_NAGQ)
            else f"; up to {HARD_MAX_NAGQ} with {allowance}"
        )
        return f"must be an integer from {minimum} to {largest}, got {nagq!r}{hint}"
    return None


def _length(value) -> int:
    # A value, a list of values, or None for an axis the block leaves at its default.
    return len(value) if isinstance(value, list) else 1


def _blocks(grid) -> list:
    return grid if isinstance(grid, list) else [grid]


def _largest_n_groups(grid) -> int:
    values = [g for block in _blocks(grid) for g in
              (block["n_groups"] if isinstance(block["n_groups"], list) else [block["n_groups"]])]
    return max(values)


def size_problems(config: Mapping) -> list[str]:
    """Messages for a grid, job count or job size over the limits (schema-valid config)."""
    problems = []
    grid = config["grid"]
    cells = sum(
        math.prod(_length(block.get(axis.name)) for axis in AXES)  # an absent axis: its default
        for block in _blocks(grid)
    )
    if cells > MAX_CELLS:
        problems.append(f"config key 'grid': {cells:,} cells, at most {MAX_CELLS:,} allowed")
        return problems
    replicates, chunk_size = int(config["replicates"]), int(config["chunk_size"])
    jobs = cells * -(-replicates // chunk_size)
    if jobs > MAX_JOBS:
        smallest = -(-replicates * cells // MAX_JOBS)
        problems.append(
            f"config key 'chunk_size': {cells} cell(s) x ceil({replicates} / {chunk_size}) = "
            f"{jobs:,} fitting jobs, at most {MAX_JOBS:,} allowed "
            f"(chunk_size >= {smallest} here)"
        )
    n_groups = _largest_n_groups(grid)
    per_job = min(chunk_size, replicates) * n_groups
    if per_job > MAX_DATASETS_PER_JOB:
        problems.append(
            f"config key 'chunk_size': a job of {min(chunk_size, replicates):,} replicates of "
            f"{n_groups:,} groups fits {per_job:,} groups, at most {MAX_DATASETS_PER_JOB:,} "
            f"allowed (chunk_size <= {max(1, MAX_DATASETS_PER_JOB // n_groups):,} here)"
        )
    return problems


def option_problems(method_options: Mapping, known_methods: Mapping) -> list[str]:
    """Messages for unknown option keys of registered methods and out-of-range ``nagq``.

    The known keys of a method are its registered ``default_options`` (plus
    ``allow_large_nagq`` for a method that has ``nagq``).
    """
    problems = []
    for name, options in (method_options or {}).items():
        if name not in known_methods or not isinstance(options, Mapping):
            continue  # unknown methods and non-mapping options are reported elsewhere
        known = list(known_methods[name].default_options)
        if "nagq" in known:
            known.append(ALLOW_LARGE_NAGQ)
        for key in options:
            if key not in known:
                takes = f"known keys: {', '.join(known)}" if known else "it takes no options"
                problems.append(
                    f"config key 'method_options.{name}.{key}': method '{name}' has no option "
                    f"'{key}' ({takes}){did_you_mean(key, known)}"
                )
        if "nagq" in options:
            problem = nagq_problem(options["nagq"], bool(options.get(ALLOW_LARGE_NAGQ)),
                                   minimum=2)
            if problem:
                problems.append(f"config key 'method_options.{name}.nagq': {problem}")
    return problems


def without_check_only_options(method_options: Mapping) -> dict:
    """Method options as the fitters get them: ``allow_large_nagq`` removed."""
    return {
        name: {k: v for k, v in options.items() if k != ALLOW_LARGE_NAGQ}
        for name, options in (method_options or {}).items()
    }
