"""The benchmark scripts run (smoke mode) and print their figures."""

import shutil
import subprocess
import sys

import pytest

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


def test_training_speed_benchmark_prints_ratios_and_cache_speedup():
    out = run_benchmark("training_speed.py")
    for label in ("samples/s", "audio-seconds/s", "step time (s)", "peak memory (MB)", "model TFLOP/s"):
        line = next(l for l in out.splitlines() if l.startswith(label))
        assert line.rstrip().endswith("x") and float(line.split()[-1].rstrip("x")) > 0
    # the reference computes the full 131072-wide logits: it executes more FLOPs per sample
    reference, ours = map(float, next(l for l in out.splitlines() if l.startswith("executed GFLOP")).split()[-2:])
    assert reference > ours > 0
    assert "encoder cache: epoch 1" in out


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)")
def test_learning_benchmark_reports_controls_and_leaves_a_model_that_transcribes(tmp_path):
    out = run_benchmark("learning.py", "--out", str(tmp_path / "learning"))
    for name in ("held-out", "unseen voices and lengths"):
        assert f"{name}: audio-blind control (best constant answer" in out
        assert f"{name}: Whisper tiny.en zero-shot: WER" in out
    assert "held-out WER before:" in out and "unseen voices and lengths WER after:" in out
    after = float(next(l for l in out.splitlines() if l.startswith("held-out WER after:")).split()[-1])
    assert after >= 0
    run_dir = next(l for l in out.splitlines() if l.startswith("run directory: ")).split(": ", 1)[1]
    clip = next((tmp_path / "learning" / "digits" / "held-out").glob("*.flac"))
    proc = subprocess.run([sys.executable, "-m", "voxtral_exp.transcribe", run_dir, str(clip), "--max-new-tokens", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"{clip}\t")
