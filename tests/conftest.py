"""Shared fixtures: the stored reference fits."""

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def load_reference(name):
    with open(DATA / name) as handle:
        return json.load(handle)["datasets"]


@pytest.fixture(scope="session")
def lme4_datasets():
    return load_reference("lme4_reference.json")


@pytest.fixture(scope="session")
def jags_datasets():
    return load_reference("jags_reference.json")
