"""The benchmark scripts run (smoke mode) and print their figures."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.learning import LANGUAGES
from benchmarks.pipelines import flops_3b
from tests.conftest import ROOT


def run_benchmark(script: str, *args: str, timeout: int = 300) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_data_pipeline_benchmark_compares_equal_worker_counts():
    out = run_benchmark("data_pipeline.py")
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [0, 1, 2]  # the same worker count on both sides
    assert all(row[-1].endswith("x") and float(row[-1][:-1]) > 0 for row in rows)


@pytest.mark.slow  # ~2.5 min: nine training processes; `make test-all` runs it
def test_training_speed_benchmark_compares_sides_that_train_the_same_weights():
    out = run_benchmark("training_speed.py", "--only", "lora,methods,cache")
    lines = out.splitlines()
    section = lines.index(next(line for line in lines if line.startswith("equal work: LoRA")))
    rows = {line.split()[0]: line for line in lines[section + 2 : section + 5]}
    assert set(rows) == {"voxtral_exp", "reference", "axolotl-style"}
    # each side: samples/s, ratio, peak memory, and the work of one sample on the real 3B shapes
    tflops = {name: float(row.split()[-2]) for name, row in rows.items()}
    assert tflops["reference"] == tflops["axolotl-style"] > tflops["voxtral_exp"] > 5  # 3B: full logits cost more
    trainable = lines[section + 5].split(": ", 1)[1]
    assert len({part.rsplit(" ", 1)[1] for part in trainable.split(", ")}) == 1  # equal trainable weights
    adapters = next(line for line in lines if line.startswith("  + LoRA adapters in the encoder"))
    assert float(adapters.split()[-1].rstrip("x")) < 1  # more work per sample on the 3B: a method change, slower
    assert "per-step ceiling: a live step costs" in out and "3 epochs without the cache" in out


def test_3b_projection_counts_the_work_each_pipeline_adds():
    """FLOPs per sample on Voxtral-Mini-3B's real shapes (meta device): the full-vocabulary
    logits cost the reference ~8% more work; adapters in the encoder ~30% more, a method change."""
    ours, reference, adapters = (
        flops_3b("voxtral_exp", "lora"),
        flops_3b("reference", "lora"),
        flops_3b("reference", "lora", encoder_adapters=True),
    )
    assert 7e12 < ours < reference < adapters < 12e12
    assert 1.05 < reference / ours < 1.10 and 1.25 < adapters / reference < 1.40


@pytest.mark.slow  # ~50 s of CPU in three processes; `make test-all` runs it (the GPU script's logic only)
def test_gpu_benchmark_logic_runs_on_a_cpu_toy(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--cpu-toy", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "(a) train.py end to end: " in out and " s for 2 LoRA steps + save" in out
    assert out.count("flac\t") == 2  # two clips transcribed from final/
    for name in ("voxtral_exp", "reference", "axolotl-style"):
        assert next(line for line in out.splitlines() if line.strip().startswith(name + " "))
    assert "goal >= 1.3x the best baseline" in out
    assert (tmp_path / "gpu_results.json").is_file()


@pytest.mark.slow  # ~3 min (5.5 under a load of 6): Whisper base's encoder over 16 clips, 4 transcribe commands; `make test-all` runs it
@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)"
)
def test_multilingual_learning_benchmark_reports_every_language_from_the_runs_own_evaluation(tmp_path):
    out = run_benchmark("learning.py", "--task", "multilingual", "--out", str(tmp_path / "learning"), timeout=600)
    lines = out.splitlines()
    run_dir = next(line for line in lines if line.startswith("run directory: ")).split(": ", 1)[1]
    per_language = json.loads((Path(run_dir) / "eval_results.json").read_text())["per_language"]
    assert set(per_language) == {"en", "fr", "de", "es"}
    for lang, scores in per_language.items():
        printed = next(line for line in lines if line.startswith(f"held-out WER after [{lang}]: "))
        assert float(printed.split()[-1]) == pytest.approx(scores["wer"], abs=5e-4)  # the run's own evaluation
        row = next(line for line in lines if line.startswith(f"  [{lang}] before "))
        assert "| control " in row and "| Whisper base " in row and "| after " in row
    assert sum(line.startswith("  [") and " vs " in line for line in lines) == 4  # the transcribe command, per language
    assert "held-out hypotheses change" in out
    rows = [
        json.loads(line) for line in (tmp_path / "learning" / "multilingual" / "train.jsonl").read_text().splitlines()
    ]
    assert {row["language"] for row in rows} == {"en", "fr", "de", "es"}
    for row in rows:  # each row in its language's digit words
        assert set(row["text"].split()) <= set(LANGUAGES[row["language"]][0])


@pytest.mark.slow  # ~1.5 min; `make test-all` runs it
@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)"
)
def test_learning_benchmark_reports_controls_and_leaves_a_model_that_transcribes(tmp_path):
    out = run_benchmark("learning.py", "--out", str(tmp_path / "learning"))
    for name in ("held-out", "unseen voices and lengths"):
        assert f"{name}: audio-blind control (best constant answer" in out
        assert f"{name}: Whisper tiny.en zero-shot: WER" in out
    assert "held-out WER before:" in out and "unseen voices and lengths WER after:" in out
    after = float(next(line for line in out.splitlines() if line.startswith("held-out WER after:")).split()[-1])
    run_dir = next(line for line in out.splitlines() if line.startswith("run directory: ")).split(": ", 1)[1]
    evaluated = json.loads((Path(run_dir) / "eval_results.json").read_text())["eval_wer"]
    assert after == pytest.approx(evaluated, abs=5e-4)  # the figure printed is the run's own evaluation
    clip = next((tmp_path / "learning" / "digits" / "held-out").glob("*.flac"))
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.transcribe", run_dir, str(clip), "--max-new-tokens", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"{clip}\t")


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)"
)
@pytest.mark.parametrize("task", ["digits", "multilingual"])
def test_two_work_folders_of_a_task_hold_the_same_audio_so_ab_sides_share_the_encoder_cache(tmp_path, task):
    """learning.py --encoder-cache: the cache is keyed by the audio's bytes, so a second side
    (another --out) reuses the first side's encoder output only if synthesis is byte-identical."""
    from benchmarks.learning import synthesize
    from voxtral_exp.data.manifest import read_manifest
    from voxtral_exp.training.encoder_cache import example_key

    sets = {"train": 4, "held-out": 2, "unseen voices and lengths": 2}
    a, b = (synthesize(tmp_path / side, sets, task=task) for side in ("a", "b"))
    for name in sets:
        keys_a, keys_b = ([example_key(e) for e in read_manifest(m[name])[0]] for m in (a, b))
        assert keys_a == keys_b and len(set(keys_a)) == len(keys_a)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)"
)
def test_commands_task_fills_both_held_out_sets_at_their_default_size(tmp_path):
    """Eight held-out pairs x six verbs = 48 commands: each held-out set holds 40 different ones,
    none of their pairs is in training, and the second set is in voices training never used."""
    from benchmarks.learning import DEFAULTS, HELD_OUT_PAIRS, SETS, synthesize

    _, eval_clips, _ = DEFAULTS["commands"]
    sets = {"train": 8, "held-out": eval_clips, "unseen voices and lengths": eval_clips}
    manifests = synthesize(tmp_path, sets, task="commands")
    texts = {name: [json.loads(line)["text"] for line in manifests[name].read_text().splitlines()] for name in sets}
    held_out = {f"{c} {o}" for c, o in HELD_OUT_PAIRS}
    assert not any(" ".join(t.split()[2:]) in held_out for t in texts["train"])
    for name in ("held-out", "unseen voices and lengths"):
        assert len(set(texts[name])) == eval_clips and all(" ".join(t.split()[2:]) in held_out for t in texts[name])
    assert not set(SETS["unseen voices and lengths"][0]) & set(SETS["train"][0])


def test_the_transfer_decision_follows_the_rule_written_before_the_run():
    """RESULTS.md's rule: a clip side becomes the default when its median WER at equal steps is at
    most chunk's worst seed, it reaches (and holds for two evaluations) chunk's median WER in no
    more steps, and it is no worse than chunk's worst seed on unseen voices; clip+window first;
    otherwise chunk stays."""
    from benchmarks.transfer import decide, steps_to_reach

    def side(at_240: list[float], at_120: float, unseen: float = 0.3) -> list[dict]:
        return [
            {"at_equal": w, "unseen": unseen, "curve": [(0, 1.0), (120, at_120), (180, w), (240, w)]} for w in at_240
        ]

    chunk = side([0.20, 0.25, 0.30], 0.4, unseen=0.35)
    fast = side([0.22, 0.24, 0.26], 0.24)
    slow = side([0.24, 0.24, 0.24], 0.5)
    worse = side([0.31, 0.32, 0.33], 0.31)
    never = side([0.28, 0.29, 0.29], 0.30)
    unseen_worse = side([0.22, 0.24, 0.26], 0.24, unseen=0.40)

    def decision(clip, window):
        runs = {"chunk": chunk, "clip": clip, "clip+window": window}
        steps = {name: [steps_to_reach(r["curve"], 0.25) for r in rows] for name, rows in runs.items()}
        return decide(runs, steps)

    assert decision(fast, fast) == ("clip", "clip")  # both qualify: the cheaper
    assert decision(fast, worse) == ("clip", "chunk")  # the window's WER is outside chunk's range
    assert decision(slow, never) == ("clip", "chunk")  # as many steps to the target as chunk: qualifies
    assert decision(never, worse) == ("chunk", "chunk")  # within range, but never reaches chunk's WER
    assert decision(unseen_worse, unseen_worse) == ("chunk", "chunk")  # worse on unseen voices and lengths
    # one lucky evaluation is not reaching the target: it must hold at the next one too
    assert steps_to_reach([(0, 1.0), (30, 0.2), (60, 0.3), (90, 0.25), (120, 0.25)], 0.25) == 90
    assert steps_to_reach([(0, 1.0), (30, 0.2)], 0.25) is None


@pytest.mark.slow  # ~1.5 min: 4 train.py runs; `make test-all` runs it
@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run does)"
)
def test_transfer_benchmark_prints_every_side_and_the_decision(tmp_path):
    out = run_benchmark("learning.py", "--task", "transfer", "--out", str(tmp_path / "transfer"), timeout=600)
    lines = out.splitlines()
    for side in ("chunk", "clip", "clip+window"):
        float(next(line for line in lines if line.startswith(f"held-out WER after [{side}]: ")).split()[-1])
    assert lines[-1].startswith("default after the decision: model.audio_tokens=")
    assert "stage 1 on its own held-out set (en, fr, de, es) served under each rule" in out
    assert "zero-shot on Portuguese under this rule" in out and "served chunk" in out and "served clip" in out
    stage2 = [
        json.loads(line) for line in (tmp_path / "transfer" / "portuguese" / "train.jsonl").read_text().splitlines()
    ]
    assert {row["language"] for row in stage2} == {"pt"}  # a language stage 1 never heard
    stage1 = (tmp_path / "transfer" / "stage1-data" / "train.jsonl").read_text()
    assert '"language": "pt"' not in stage1
