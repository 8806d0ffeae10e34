"""Data sources in every format, streaming, filters, and bad input that names its origin."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import ROOT, compose_config
from tests.data_fixtures import (
    HUB_COLUMNS,
    HUB_LAYOUT,
    hub_folder,
    hub_parquet,
    hub_table,
    mixed_manifest,
    nemo_manifest,
    sample_rows,
    tone,
    write_jsonl,
)
from voxtral_exp.data.audio import AudioError, load_audio
from voxtral_exp.data.dataset import SpeechDataset, stream_features
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.filters import DataError, ExampleChecker
from voxtral_exp.data.hf import DataSourceError
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.data.sources import load_data
from voxtral_exp.run.config import ConfigError, validate


def data_cfg(*overrides):
    return compose_config(["model=tiny", "hardware=cpu", "trainer.max_steps=2", *overrides]).dataset


# --- audio ---------------------------------------------------------------------------------


def test_every_format_rate_and_channel_count_becomes_16k_mono(tmp_path):
    manifest = mixed_manifest(tmp_path)
    for i, row in enumerate(json.loads(line) for line in manifest.read_text().splitlines()):
        audio = load_audio(str(tmp_path / row["audio_path"]))
        assert audio.ndim == 1 and audio.dtype == np.float32
        expected = (1.0 + 0.25 * i) * 16000
        assert abs(len(audio) - expected) < 0.02 * expected + 1200, row  # MP3 adds encoder padding


def test_offset_and_duration_crop_and_bytes_decode(tmp_path):
    audio = np.concatenate([np.zeros(16000, np.float32), np.ones(8000, np.float32) * 0.5])
    sf.write(tmp_path / "x.wav", audio, 16000, subtype="FLOAT")
    cropped = load_audio(str(tmp_path / "x.wav"), offset=1.0, duration=0.25)
    assert len(cropped) == 4000 and np.allclose(cropped, 0.5)
    assert len(load_audio((tmp_path / "x.wav").read_bytes())) == 24000


def test_resampling_preserves_pitch():
    audio = load_audio(_wav_bytes(tone(1.0, 44100, freq=1000.0), 44100))
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
    assert abs(peak_hz - 1000.0) < 5


def _wav_bytes(audio, rate):
    import io

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV")
    return buf.getvalue()


# --- jsonl / NeMo ----------------------------------------------------------------------------


def test_jsonl_paths_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    manifest = mixed_manifest(tmp_path / "set")
    monkeypatch.chdir("/")
    data = load_data(data_cfg(f"dataset.train_manifest={manifest}", f"dataset.eval_manifest={manifest}"), 0)
    assert [Path(e.audio).parent for e in data.train] == [tmp_path / "set" / "clips"] * 4
    assert all(e.language == "en" for e in data.train)


def test_nemo_manifest_with_offsets_into_one_long_file(tmp_path):
    manifest = nemo_manifest(tmp_path)
    data = load_data(data_cfg(f"dataset.train_manifest={manifest}", f"dataset.eval_manifest={manifest}"), 0)
    assert [e.language for e in data.train] == ["fr"] * 4
    for i, example in enumerate(data.train):
        audio = load_audio(example.audio, example.offset, example.duration)
        assert len(audio) == 16000
        peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
        assert abs(peak_hz - 200 * (i + 1)) < 3  # each segment is its own tone


def test_one_manifest_split_by_seeded_ratio():
    cfg = data_cfg("dataset.eval_manifest=null", "dataset.eval_fraction=0.25")
    first, again, other = load_data(cfg, 1), load_data(cfg, 1), load_data(cfg, 2)
    assert len(first.eval) == 7 and len(first.train) == 20
    assert [e.origin for e in first.eval] == [e.origin for e in again.eval]
    assert [e.origin for e in first.eval] != [e.origin for e in other.eval]
    assert not {e.origin for e in first.eval} & {e.origin for e in first.train}


def test_a_training_manifest_given_alone_is_evaluated_on_a_held_out_part_of_it_saying_so(tmp_path, caplog):
    manifest = write_jsonl(tmp_path / "mine.jsonl", sample_rows("train")[:20])
    with caplog.at_level("INFO"):
        data = load_data(data_cfg(f"dataset.train_manifest={manifest}"), 7)
    assert (len(data.train), len(data.eval)) == (18, 2)  # dataset.eval_fraction=0.1
    assert all(e.origin.startswith(f"{manifest}:") for e in data.eval)  # none of the bundled sample's
    assert not {e.origin for e in data.eval} & {e.origin for e in data.train}
    assert (
        f"Data <dataset.eval_manifest=null>: evaluating on 2 of the 20 examples of {manifest}, held out "
        "(dataset.eval_fraction=0.1, seed 7) and never trained on" in caplog.text
    )
    assert data.report["eval_held_out"] == {"of": str(manifest), "eval_fraction": 0.1, "seed": 7, "examples": 2}
    assert data_cfg().eval_manifest == str(ROOT / "data" / "sample" / "eval.jsonl")  # the sample keeps its own


# --- hub -------------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_parquet_with_embedded_audio(tmp_path, streaming):
    paths = hub_parquet(tmp_path)
    cfg = data_cfg(
        "dataset=hub",
        f"dataset.path={paths['train0']}",
        "dataset.eval_split=null",
        f"dataset.streaming={streaming}",
        "dataset.max_eval_samples=3",
        *HUB_COLUMNS,
    )
    data = load_data(cfg, 0)
    assert data.streaming == streaming and len(data.eval) == (3 if streaming else 1)
    example = data.eval[0]
    assert isinstance(example.audio, bytes) and example.language in {"en", "fr", "de", "es"}
    assert len(load_audio(example.audio)) > 8000


def test_hub_folder_and_save_to_disk_share_one_code_path(tmp_path):
    folder = hub_folder(tmp_path / "hub")
    from_folder = load_data(data_cfg("dataset=hub", f"dataset.path={folder}", *HUB_COLUMNS), 0)
    assert len(from_folder.train) == 27 and len(from_folder.eval) == 9
    import datasets

    datasets.DatasetDict(
        {"train": hub_table(sample_rows("train")), "validation": hub_table(sample_rows("eval"))}
    ).save_to_disk(str(tmp_path / "saved"))
    saved = load_data(data_cfg("dataset=hub", f"dataset.path={tmp_path / 'saved'}", *HUB_COLUMNS), 0)
    assert [e.text for e in saved.eval] == [e.text for e in from_folder.eval]
    assert saved.train[0].audio == from_folder.train[0].audio


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    folder = hub_folder(tmp_path / "hub")
    with pytest.raises(DataSourceError) as e:
        load_data(data_cfg("dataset=hub", f"dataset.path={folder}", *HUB_LAYOUT, "dataset.columns.text=transcript"), 0)
    message = str(e.value)
    assert "dataset.columns.text='transcript'" in message and "['audio', 'locale', 'sentence']" in message


def test_stream_over_two_workers_yields_each_example_once(tmp_path, processor):
    folder = hub_folder(tmp_path / "hub")
    cfg = data_cfg("dataset=hub", f"dataset.path={folder}", "dataset.streaming=true", *HUB_COLUMNS)
    data = load_data(cfg, 0)
    assert data.train.num_shards == 2
    stream = stream_features(
        data.train,
        data.adapter,
        Featurizer(processor, "offline"),
        ExampleChecker(cfg.filters, processor.tokenizer),
        "raise",
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    texts = [row["text"] for row in loader]
    assert sorted(texts) == sorted(r["text"] for r in sample_rows("train"))


def test_streaming_with_epochs_asks_for_max_steps(tmp_path):
    cfg = compose_config(["hardware=cpu", "dataset=hub", "dataset.streaming=true", "trainer.max_steps=-1"])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert "set trainer.max_steps" in str(e.value)


# --- bad input -------------------------------------------------------------------------------


def planted_manifest(folder: Path) -> tuple[Path, dict[str, int]]:
    """A manifest with one of each problem; returns it and {problem: line number}."""
    folder.mkdir(parents=True, exist_ok=True)
    good = sample_rows("train")[:3]
    (folder / "garbage.wav").write_bytes(b"RIFF not really audio")
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), 16000)
    nan = tone(0.5, 16000)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    lines = {
        "ok1": good[0],
        "missing_file": {"audio_path": "nope.wav", "text": "missing"},
        "unreadable_audio": {"audio_path": "garbage.wav", "text": "garbage"},
        "ok2": good[1],
        "empty_audio": {"audio_path": "empty.wav", "text": "empty"},
        "nan_audio": {"audio_path": "nan.wav", "text": "not a number"},
        "malformed": '{"audio_path": "x.wav", "text": ',
        "missing_column": {"audio_path": good[2]["audio_path"]},
        "empty_text": {"audio_path": good[2]["audio_path"], "text": "  "},
        "ok3": good[2],
    }
    path = write_jsonl(folder / "planted.jsonl", list(lines.values()))
    return path, {name: i + 1 for i, name in enumerate(lines)}


def test_raise_lists_every_problem_of_a_manifest_in_one_pass(tmp_path):
    path, line = planted_manifest(tmp_path)
    good = write_jsonl(tmp_path / "good.jsonl", sample_rows("eval"))
    with pytest.raises(DataError) as e:
        load_data(data_cfg(f"dataset.train_manifest={path}", f"dataset.eval_manifest={good}"), 0)
    message = str(e.value)
    # malformed lines, rows without text, missing and unreadable files, empty audio and text: together
    assert f"{path}:{line['malformed']}: not valid JSON" in message
    assert f"{path}:{line['missing_column']}: no 'text' string" in message
    assert f"{path}:{line['missing_file']}: audio file {tmp_path / 'nope.wav'} not found" in message
    reasons = sorted(f.reason for f in e.value.findings)
    assert reasons == ["bad_row", "bad_row", "empty_audio", "empty_text", "missing_file", "unreadable_audio"]
    assert "dataset.on_error=skip" in message


def test_manifest_languages_come_from_any_language_key_and_are_normalised(tmp_path):
    rows = sample_rows("train")[:4]
    rows[0] = {**rows[0], "language": "fr_FR"}
    rows[1] = {"audio_filepath": rows[1]["audio_path"], "text": "granary row", "source_lang": "de", "duration": "None"}
    rows[2] = {**{k: v for k, v in rows[2].items() if k != "language"}, "lang": "French"}
    rows[3] = {**rows[3], "language": "klingon"}
    path = write_jsonl(tmp_path / "langs.jsonl", rows)
    examples, bad = read_manifest(path)
    assert [e.language for e in examples] == ["fr", "de", "fr"] and examples[1].duration is None
    assert len(bad) == 1 and bad[0].startswith(f"{path}:4: language 'klingon' is not an ISO 639-1 code")


def test_skip_drops_and_counts_every_problem(tmp_path):
    path, _ = planted_manifest(tmp_path)
    good = write_jsonl(tmp_path / "good.jsonl", sample_rows("eval"))
    data = load_data(
        data_cfg(f"dataset.train_manifest={path}", f"dataset.eval_manifest={good}", "dataset.on_error=skip"), 0
    )
    # the NaN file has a valid header: the up-front screen keeps it, decoding catches it later
    assert len(data.train) == 4
    report = data.report["train"]
    assert report["dropped"] == {
        "missing_file": 1,
        "unreadable_audio": 1,
        "empty_audio": 1,
        "empty_text": 1,
        "bad_row": 2,
    }
    assert report["total"] == 10 and report["kept"] == 4


def test_skip_replaces_a_clip_that_fails_to_decode_while_training(tmp_path, processor, caplog):
    """The NaN clip passes the header screen; when a DataLoader asks for it, on_error=skip serves
    the next example instead (and logs it), on_error=raise stops naming the row."""
    path, lines = planted_manifest(tmp_path)
    examples = [e for e in read_manifest(path)[0] if e.text in ("not a number", sample_rows("train")[2]["text"])]
    assert [e.text for e in examples][0] == "not a number"
    featurizer = Featurizer(processor, "offline")
    with caplog.at_level("WARNING"):
        served = SpeechDataset(examples, featurizer, on_error="skip")[0]
    assert served["text"] == examples[1].text
    assert f"Skipping {path}:{lines['nan_audio']}" in caplog.text
    with pytest.raises(AudioError, match=rf"{path}:{lines['nan_audio']}: .*nan\.wav contains NaN"):
        SpeechDataset(examples, featurizer, on_error="raise")[0]


def test_nan_samples_are_an_error_that_names_the_file(tmp_path):
    path, _ = planted_manifest(tmp_path)
    with pytest.raises(AudioError, match=r"nan\.wav contains NaN"):
        load_audio(str(tmp_path / "nan.wav"))


def test_filters_drop_and_count_by_reason(tmp_path, processor):
    cfg = data_cfg(
        "dataset.filters.min_duration=1.5", "dataset.filters.max_duration=2.0", "dataset.filters.max_label_tokens=6"
    )
    data = load_data(cfg, 0, processor.tokenizer)
    report = data.report["train"]
    assert set(report["dropped"]) <= {"too_short", "too_long", "too_many_label_tokens"}
    assert report["kept"] == len(data.train) and report["kept"] + sum(report["dropped"].values()) == 27
    assert report["dropped"].get("too_short") and report["dropped"].get("too_long")


def test_check_command_reports_every_planted_problem_in_one_pass(tmp_path):
    path, line = planted_manifest(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.check", "model=tiny", f"dataset.train_manifest={path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = proc.stdout
    for name in (
        "missing_file",
        "unreadable_audio",
        "empty_audio",
        "nan_audio",
        "malformed",
        "missing_column",
        "empty_text",
    ):
        assert f"{path}:{line[name]}:" in out, name
    assert "7 example(s) with errors" in out
    # its one good row held out for evaluation (dataset.eval_fraction), as train.py would
    assert "train: 9 examples, 2 usable" in out and "eval: 1 examples, 1 usable" in out


def test_streamed_bad_rows_are_skipped_and_written_to_the_drop_log(tmp_path, processor):
    import datasets

    rows = sample_rows("train")[:4]
    table = hub_table(rows)
    bad = datasets.Dataset.from_dict(
        {
            "audio": [
                {"bytes": b"RIFF garbage", "path": None},
                {"bytes": Path(rows[0]["audio_path"]).read_bytes(), "path": None},
            ],
            "sentence": ["garbage audio", "   "],
            "locale": ["en", "en"],
        }
    )
    bad = bad.cast_column("audio", datasets.Audio())
    path = tmp_path / "mixed.parquet"
    datasets.concatenate_datasets([table, bad]).to_parquet(path)
    cfg = data_cfg(
        "dataset=hub",
        f"dataset.path={path}",
        "dataset.eval_split=null",
        "dataset.streaming=true",
        "dataset.max_eval_samples=1",
        "dataset.on_error=skip",
        *HUB_COLUMNS,
    )
    data = load_data(cfg, 0)
    log = tmp_path / "dropped.jsonl"
    stream = stream_features(
        data.train,
        data.adapter,
        Featurizer(processor, "offline"),
        ExampleChecker(cfg.filters, processor.tokenizer),
        "skip",
        log,
    )
    kept = list(stream)
    assert len(kept) == 3  # 6 rows, 1 held out for eval, 2 bad
    dropped = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(d["reason"] for d in dropped) == ["empty_text", "unreadable_audio"]
    assert all(d["origin"].startswith(f"{path}[train] row ") for d in dropped)
