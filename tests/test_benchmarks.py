"""The benchmark scripts run (smoke mode) and print their figures."""

import subprocess
import sys

from tests.conftest import ROOT


def run_benchmark(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_data_pipeline_benchmark_prints_every_pipeline_and_ratio():
    out = run_benchmark("data_pipeline.py")
    for name in ("reference, main process", "voxtral_exp, 1 worker", "voxtral_exp, 2 workers"):
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert line.rstrip().endswith("x") and float(line.split()[-2]) > 0
