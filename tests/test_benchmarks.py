"""The arithmetic that benchmarks/bench_pipeline.py reports about issue 11's two speed targets."""

import re
import sys

from conftest import ROOT


def bench_pipeline(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_pipeline", raising=False)
    import bench_pipeline

    return bench_pipeline


def test_targets_together_recomputes_the_floor_with_bayes_at_four_times_laplace(monkeypatch):
    module = bench_pipeline(monkeypatch)
    floor = {"(simulate)": 3.0, "laplace": 2.0, "agq": 4.0, "bayes": 100.0}  # fits: 106 s
    # 26 s beyond the fits (the simulation is not part of the floor) and 14 s of figure work.
    today, faster = module.targets_together(132.0, floor, 14.0)
    assert "CPU beyond the floor   26.0 s" in today
    assert "wall / floor >= 1.25 at today's Bayes" in today  # 1 + 26 / 106
    # Bayes at 4 x 2 s: the floor is 2 + 4 + 8 = 14 s, so the same 26 s give 1 + 26 / 14.
    assert "floor CPU 14.0 s instead of 106.0 s" in faster
    assert "wall / floor >= 2.86" in faster
    assert re.search(r"1\.3 would leave 4\.2 s of CPU beyond the fits, against 14\.0 s", faster)
