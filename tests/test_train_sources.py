"""A short training run on each data source, through train.py as a user runs it."""

import json

import pytest

from tests.conftest import FAST, run_train
from tests.data_fixtures import HUB_COLUMNS, hub_folder, nemo_manifest

SHORT = [
    *FAST,
    "method=lora",
    "trainer.max_steps=3",
    "trainer.eval_steps=3",
    "trainer.save_steps=3",
    "tracking.enabled=false",
    "evaluation.max_new_tokens=2",
]


def assert_completed(run_dir):
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed"
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
    assert "eval_wer" in json.loads((run_dir / "eval_results.json").read_text())
    return json.loads((run_dir / "data_report.json").read_text())


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_source_trains(tmp_path, trackio_dir, streaming):
    folder = hub_folder(tmp_path / "hub")
    run_train(
        [
            *SHORT,
            "dataset=hub",
            f"dataset.path={folder}",
            *HUB_COLUMNS,
            f"dataset.streaming={streaming}",
            "trainer.dataloader_num_workers=2",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        trackio_dir,
    )
    report = assert_completed(tmp_path / "run")
    assert report["eval"]["kept"] == 9
    assert ("train" in report) == (not streaming)  # streams are filtered on the fly


def test_nemo_manifest_trains(tmp_path, trackio_dir):
    manifest = nemo_manifest(tmp_path / "nemo")
    run_train(
        [
            *SHORT,
            f"dataset.train_manifest={manifest}",
            f"dataset.eval_manifest={manifest}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        trackio_dir,
    )
    report = assert_completed(tmp_path / "run")
    assert report["train"] == {"total": 4, "kept": 4, "dropped": {}, "findings": []}
