"""Every shipped combination composes and validates; each bad value is reported by key."""

import itertools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import CONF, compose_config
from voxtral_exp.run.config import ConfigError, validate

GROUPS = {  # shipped options; files starting with "_" are shared parts, not options
    g: sorted(p.stem for p in (Path(CONF) / g).glob("*.yaml") if not p.stem.startswith("_"))
    for g in ("model", "dataset", "method", "hardware")
}


def test_shipped_groups_are_the_documented_ones():
    assert GROUPS["model"] == [
        "base-whisper",
        "realtime-tiny",
        "tiny",
        "tiny-whisper",
        "voxtral-mini-3b",
        "voxtral-realtime-4b",
        "voxtral-small-24b",
    ]
    assert GROUPS["method"] == ["full", "lora"]
    assert GROUPS["hardware"] == ["auto", "cpu", "gpu"]
    assert GROUPS["dataset"] == ["fleurs", "granary", "hub", "jsonl", "voxpopuli"]


@pytest.mark.parametrize(
    "model,dataset,method,hardware",
    list(itertools.product(GROUPS["model"], GROUPS["dataset"], GROUPS["method"], GROUPS["hardware"])),
)
def test_every_combination_composes_and_validates(model, dataset, method, hardware):
    cfg = compose_config([f"model={model}", f"dataset={dataset}", f"method={method}", f"hardware={hardware}"])
    assert cfg.model.name == model and cfg.method.name == method and cfg.dataset.name == dataset
    expected = []
    if hardware == "gpu" and not torch.cuda.is_available():
        expected.append("hardware=gpu but torch.cuda.is_available() is False: use hardware=cpu or hardware=auto")
    if cfg.model.get("family") == "realtime" and cfg.dataset.get("streaming"):  # word timings are read up front
        expected.append(
            f"model={model} trains on word timings read before training: use map-style data (dataset.streaming=false)"
        )
    if expected:
        with pytest.raises(ConfigError) as e:
            validate(cfg)
        assert e.value.problems == expected
    else:
        validate(cfg)
        OmegaConf.to_container(cfg.trainer, resolve=True)  # everything TrainingArguments gets resolves


def test_auto_hardware_picks_by_cuda():
    cfg = compose_config(["hardware=auto"])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert cfg.hardware.device == expected
    assert cfg.trainer.use_cpu == (expected == "cpu")
    assert cfg.trainer.bf16 == (expected == "cuda" and torch.cuda.is_bf16_supported())


def test_experiment_preset_overrides_groups_and_command_line_wins():
    cfg = compose_config(["experiment=quickstart"])
    assert (cfg.model.name, cfg.method.name, cfg.trainer.max_steps) == ("tiny-whisper", "full", 200)
    cfg = compose_config(["experiment=quickstart", "method=lora", "trainer.max_steps=7"])
    assert (cfg.method.name, cfg.trainer.max_steps) == ("lora", 7)


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.learning_rate=-1e-4", "trainer.learning_rate"),
        ("method.r=0", "method.r"),
        ("dataset.train_manifest=/nonexistent/train.jsonl", "dataset.train_manifest"),
        ("model.name_or_path=/nonexistent/voxtral", "model.name_or_path"),
        ("trainer.bf16=true", "trainer.bf16"),
        ("objective=accuracy", "objective"),
        ("evaluation.normalizer=fancy", "evaluation.normalizer"),
        # what transformers' TrainingArguments refuses, found by building it in validation
        ("trainer.lr_scheduler_type=bogus", "bogus is not a valid SchedulerType"),
        ("trainer.eval_strategy=no", "trainer.load_best_model_at_end requires the save and eval strategy to match"),
        ("+trainer.save_stepz=8", "trainer.save_stepz: transformers' TrainingArguments has no such argument"),
    ],
)
def test_each_problem_names_its_key(override, key):
    overrides = ["hardware=cpu", override]
    if override.startswith("model.name_or_path"):
        overrides.append("model=voxtral-mini-3b")
    with pytest.raises(ConfigError) as e:
        validate(compose_config(overrides))
    assert len(e.value.problems) == 1
    assert key in e.value.problems[0]


def test_all_problems_are_reported_at_once():
    cfg = compose_config(
        [
            "hardware=cpu",
            "trainer.learning_rate=0",
            "method.r=0",
            "trainer.bf16=true",
            "dataset.eval_manifest=/missing.jsonl",
        ]
    )
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    text = str(e.value)
    for key in ("trainer.learning_rate", "method.r", "trainer.bf16", "dataset.eval_manifest"):
        assert key in text
    assert len(e.value.problems) == 4


def test_unknown_model_name_lists_the_options():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as e:
        compose_config(["model=voxtral-huge"])
    assert "voxtral-mini-3b" in str(e.value) and "tiny" in str(e.value)


def test_the_committed_default_audio_rule_is_the_transfer_benchmarks_decision():
    """benchmarks/learning.py --task transfer ends with the decision its rule reached
    (RESULTS.md); train.py, every model preset (what the app composes) and the quickstart carry it."""
    import re

    results = (Path(CONF).parent / "benchmarks" / "RESULTS.md").read_text()
    tokens, window = re.search(
        r"default after the decision: model.audio_tokens=(\w+)\s+model.encoder_window=(\w+)", results
    ).groups()
    presets = [m for m in GROUPS["model"] if "realtime" not in m]  # Realtime models read audio as a stream
    for overrides in [[], ["experiment=quickstart"], *([f"model={m}"] for m in presets)]:
        cfg = compose_config(overrides)
        assert (cfg.model.audio_tokens, cfg.model.encoder_window) == (tokens, window), overrides
