"""Shared fixtures and helpers: the stored reference fits, ragged batches of datasets."""

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def ragged(datasets):
    """(R, G) counts of datasets with different numbers of groups, padded with n == 0 groups."""
    width = max(len(entry["y"]) for entry in datasets)
    y = np.zeros((len(datasets), width), dtype=int)
    n = np.zeros((len(datasets), width), dtype=int)
    for row, entry in enumerate(datasets):
        y[row, : len(entry["y"])] = entry["y"]
        n[row, : len(entry["n"])] = entry["n"]
    return y, n


def load_reference(name):
    with open(DATA / name) as handle:
        return json.load(handle)["datasets"]


@pytest.fixture(scope="session")
def lme4_datasets():
    return load_reference("lme4_reference.json")


@pytest.fixture(scope="session")
def jags_datasets():
    return load_reference("jags_reference.json")
