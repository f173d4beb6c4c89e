"""Shared fixtures and helpers: the stored reference fits, ragged batches of datasets and
copies of the workflow for end-to-end runs."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
SMALL = "tests/config_small.yaml"


def snakemake_executable() -> str:
    found = Path(sys.executable).parent / "snakemake"
    return str(found) if found.exists() else shutil.which("snakemake")


def workflow_copy(directory: Path, default_profile: bool = False) -> Path:
    """The workflow and the small config copied to a new ``directory``; with ``default_profile``
    also ``profiles/``, which a plain ``snakemake`` there then reads by itself."""
    directory.mkdir(parents=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, directory / name)
    for name in ("workflow", "scripts") + (("profiles",) if default_profile else ()):
        shutil.copytree(ROOT / name, directory / name)
    (directory / "tests").mkdir()
    shutil.copy(ROOT / SMALL, directory / SMALL)
    return directory


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
