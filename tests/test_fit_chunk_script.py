"""scripts/fit_chunk.py, run as Snakemake runs it: the chunk's tables, without importing pandas."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from glmmshrink.config import Cell
from glmmshrink.study import fit_chunk

ROOT = Path(__file__).resolve().parents[1]
CELL = Cell(n_groups=6, n_trials_min=3, n_trials_max=12, re_sd=1.0, p0=0.4)
METHODS = ["raw", "laplace", "agq", "bayes"]
OPTIONS = {"agq": {"nagq": 5}}

# What Snakemake's script directive gives the script: a `snakemake` object, then the code.
HARNESS = r"""
import json, sys
from types import SimpleNamespace as ns
spec = json.loads(sys.argv[1])
snakemake = ns(log=[spec["log"]], threads=1, wildcards=ns(start="2", stop="9"),
               params=ns(cell=spec["cell"], seed=7, methods=spec["methods"],
                         method_options=spec["options"]),
               output=ns(replicates=spec["replicates"], groups=spec["groups"]))
exec(compile(open(spec["script"]).read(), spec["script"], "exec"), {"snakemake": snakemake})
print(json.dumps({"pandas_imported": "pandas" in sys.modules}))
"""


def test_the_job_script_writes_fit_chunks_tables_without_importing_pandas(tmp_path):
    spec = {
        "script": str(ROOT / "scripts/fit_chunk.py"), "cell": CELL.parameters(),
        "methods": METHODS, "options": OPTIONS, "log": str(tmp_path / "job.log"),
        "replicates": str(tmp_path / "replicates.parquet"),
        "groups": str(tmp_path / "groups.parquet"),
    }
    result = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(spec)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == {"pandas_imported": False}
    assert "work time" in (tmp_path / "job.log").read_text()
    replicates, groups = fit_chunk(CELL, 7, 2, 9, METHODS, OPTIONS)
    assert pq.read_table(spec["replicates"]).to_pandas().equals(replicates.to_pandas())
    assert pq.read_table(spec["groups"]).to_pandas().equals(groups.to_pandas())
