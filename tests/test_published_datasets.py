"""Datasets as they are published: NVIDIA Granary (and its embedded-audio YODAS twin), FLEURS
and VoxPopuli, each on a local replica built from its published schema (card configs and
splits, file layout, row keys and features), read, checked and trained on as a user would."""

import json
import math

import numpy as np
import pytest

from tests.conftest import FAST, compose_config, run_train
from tests.data_fixtures import (
    fleurs_folder,
    granary_folder,
    voxpopuli_folder,
    yodas_granary_folder,
)
from voxtral_exp import check
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.dataset import stream_features
from voxtral_exp.data.example import optional_seconds
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.filters import DataError, ExampleChecker
from voxtral_exp.data.hf import DataSourceError
from voxtral_exp.data.languages import VOXTRAL_LANGUAGES, LanguageError, language_code
from voxtral_exp.data.sources import load_data, preflight
from voxtral_exp.run.config import ConfigError, validate

SHORT = [
    *FAST,
    "method=lora",
    "trainer.max_steps=2",
    "trainer.eval_steps=2",
    "trainer.save_steps=2",
    "tracking.enabled=false",
    "evaluation.max_new_tokens=2",
]


@pytest.fixture(scope="module")
def granary(tmp_path_factory):
    return granary_folder(tmp_path_factory.mktemp("granary"))


@pytest.fixture(scope="module")
def yodas(tmp_path_factory):
    return yodas_granary_folder(tmp_path_factory.mktemp("yodas-granary"))


def granary_cfg(folder, *overrides):
    return compose_config(
        [
            "dataset=granary",
            "model=tiny",
            "hardware=cpu",
            f"dataset.path={folder}",
            "dataset.max_eval_samples=4",
            *overrides,
        ]
    )


def prompt_language(processor, prompt_ids) -> str | None:
    """The xx of `lang:xx` in a transcription prompt."""
    text = processor.tokenizer.decode(prompt_ids.tolist(), skip_special_tokens=False)
    return text.split("lang:")[1][:2] if "lang:" in text else None


# --- languages and optional columns ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, code",
    [
        ("fr", "fr"),
        ("FR", "fr"),
        ("fr_fr", "fr"),
        ("fr-FR", "fr"),
        ("en_accented", "en"),
        ("es_419", "es"),
        ("pt_br", "pt"),
        ("French", "fr"),
        ("fra", "fr"),
        (None, None),
        ("", None),
        ("None", None),
        (math.nan, None),
    ],
)
def test_language_spellings_map_to_iso_639_1(value, code):
    assert language_code(value) == code


@pytest.mark.parametrize("value", ["klingon", "xx", "cmn_hans_cn", 3])
def test_unmappable_languages_are_refused_with_the_supported_ones(value):
    with pytest.raises(LanguageError) as e:
        language_code(value)
    assert repr(value) in str(e.value) and ", ".join(VOXTRAL_LANGUAGES) in str(e.value)


@pytest.mark.parametrize(
    "value, seconds",
    [(None, None), ("None", None), ("", None), (math.nan, None), ("null", None), (1.5, 1.5), ("2.25", 2.25), (0, 0.0)],
)
def test_optional_seconds_treat_every_spelling_of_missing_as_missing(value, seconds):
    assert optional_seconds(value, "duration") == seconds


@pytest.mark.parametrize("value", [-1, "abc", True, float("inf")])
def test_bad_seconds_name_the_key(value):
    with pytest.raises(ValueError, match="duration="):
        optional_seconds(value, "duration")


# --- NVIDIA Granary --------------------------------------------------------------------------


def test_granary_configs_and_splits_come_from_the_card(granary):
    folder, audio_root = granary
    preflight(
        granary_cfg(
            folder, "dataset.languages=[fr,en]", "dataset.source=voxpopuli", f"dataset.audio_root={audio_root}"
        ).dataset
    )
    with pytest.raises(DataSourceError) as e:  # de has ytc only
        preflight(
            granary_cfg(
                folder, "dataset.languages=[de]", "dataset.source=[ytc,voxpopuli]", f"dataset.audio_root={audio_root}"
            ).dataset
        )
    message = str(e.value)
    assert "no config de_voxpopuli" in message
    assert "Configs that exist: de_ytc, en_voxpopuli, en_yodas, es_yodas, fr_voxpopuli, fr_ytc" in message


def test_granary_rows_keep_their_language_and_none_durations_read_the_header(granary, processor):
    folder, audio_root = granary
    cfg = granary_cfg(
        folder, "dataset.languages=[en,fr]", "dataset.source=voxpopuli", f"dataset.audio_root={audio_root}"
    )
    data = load_data(cfg.dataset, 0, processor.tokenizer)
    assert data.streaming and [e.language for e in data.eval] == ["en", "en", "fr", "fr"]
    assert all(e.duration is None and e.offset is None for e in data.eval)  # "None" strings, no offset column
    assert data.eval[0].origin == f"{folder}[en_voxpopuli/asr] row 0 (utt_id voxpopuli-en-00000)"
    rows = list(
        stream_features(
            data.train,
            data.adapter,
            Featurizer(processor, "offline"),
            ExampleChecker(cfg.dataset.filters, processor.tokenizer),
            "raise",
        )
    )
    # mixed until both are exhausted: every training row of both configs appears
    assert {r["text"] for r in rows} == {
        json.loads(line)["text"]
        for config in ("en/voxpopuli/en_asr.jsonl", "fr/voxpopuli/fr_asr.jsonl")
        for line in (folder / config).read_text().splitlines()
    } - {e.text for e in data.eval}
    for row in rows:  # source_lang is what the prompt gets
        assert prompt_language(processor, row["prompt_ids"]) == row["language"] in ("en", "fr")


def test_granary_yodas_segments_from_long_recordings_over_several_files(granary):
    folder, audio_root = granary
    cfg = granary_cfg(
        folder,
        "dataset.languages=[es]",
        "dataset.source=yodas",
        f"dataset.audio_root={audio_root}",
        "dataset.streaming=false",
        "dataset.max_eval_samples=1",
    )
    data = load_data(cfg.dataset, 0)
    examples = [*data.eval, *data.train]
    assert len(examples) == 8  # es_asr_es000.jsonl (5 rows) + es_asr_es001.jsonl (3 rows)
    assert [e.offset for e in examples[:3]] == sorted(e.offset for e in examples[:3]) and examples[1].offset > 1
    for example in examples:
        audio = load_audio(example.audio, example.offset, example.duration)
        assert abs(len(audio) - example.duration * 16000) <= 1


def test_granary_yodas_without_audio_root_streams_the_embedded_twin(granary, yodas, processor):
    folder, _ = granary
    cfg = granary_cfg(folder, "dataset.languages=[en,es]", "dataset.source=yodas", f"dataset.yodas_audio={yodas}")
    preflight(cfg.dataset)
    data = load_data(cfg.dataset, 0, processor.tokenizer)
    assert [e.language for e in data.eval] == ["en", "en", "es", "es"]  # the config's language
    assert all(isinstance(e.audio, bytes) for e in data.eval)
    assert data.eval[2].origin == f"{yodas}[Spanish/asr_only] row 0 (utt_id es000-00000)"
    rows = list(
        stream_features(
            data.train,
            data.adapter,
            Featurizer(processor, "offline"),
            ExampleChecker(cfg.dataset.filters, processor.tokenizer),
            "raise",
        )
    )
    assert len({r["text"] for r in rows}) == 12 + 8 - 4
    bad = granary_cfg(folder, "dataset.languages=[de]", "dataset.source=yodas", f"dataset.yodas_audio={yodas}")
    with pytest.raises(DataSourceError, match="has no config German.*Configs that exist: English, Spanish"):
        preflight(bad.dataset)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["dataset.task=ast", "dataset.audio_root=/tmp"],
            "dataset.task=ast (speech translation, target `answer`) is not supported",
        ),
        (["dataset.source=voxpopuli"], "nvidia/Granary publishes manifests only"),
        (
            [
                "dataset.languages=[fr,de]",
                "dataset.source=[ytc,voxpopuli]",
                "dataset.weights=[1,2]",
                "dataset.audio_root=/tmp",
            ],
            "dataset.weights has 2 entries for 4 configs: one per config, in the order ['fr_ytc', 'fr_voxpopuli', 'de_ytc', 'de_voxpopuli']",
        ),
        (["dataset.languages=[hi]"], "'hi' is not a Granary language"),
        (
            ["dataset.source=tedlium"],
            "dataset.source=tedlium: expected one or a list of yodas, ytc, voxpopuli, librilight",
        ),
    ],
)
def test_granary_config_mistakes_are_refused_before_loading(granary, overrides, expected):
    folder, _ = granary
    with pytest.raises(ConfigError) as e:
        validate(granary_cfg(folder, "trainer.max_steps=2", *overrides))
    assert expected in str(e.value)


def test_a_missing_file_under_audio_root_names_its_row_and_the_path_looked_for(tmp_path):
    folder, audio_root = granary_folder(tmp_path / "granary")
    (audio_root / "ytc" / "de" / "de_03.flac").unlink()
    cfg = granary_cfg(
        folder,
        "dataset.languages=[de]",
        "dataset.source=ytc",
        f"dataset.audio_root={audio_root}",
        "dataset.streaming=false",
        "dataset.max_eval_samples=1",
    )
    with pytest.raises(DataError) as e:
        load_data(cfg.dataset, 0)
    message = str(e.value)
    assert (
        f"{folder}[de_ytc/asr] row 6 (utt_id ytc-de-00006): audio file {audio_root}/ytc/de/de_03.flac not found"
        in message
    )
    assert "dataset.audio_root" in message


# --- FLEURS and VoxPopuli (parquet exports, ClassLabel columns) ------------------------------


def test_fleurs_lang_id_classlabel_becomes_the_prompt_language(tmp_path, processor):
    folder = fleurs_folder(tmp_path / "fleurs", "fr_fr")
    cfg = compose_config(
        ["dataset=fleurs", "hardware=cpu", f"dataset.path={folder}", "dataset.revision=null", "dataset.data_dir=fr_fr"]
    )
    data = load_data(cfg.dataset, 0, processor.tokenizer)
    assert len(data.train) == 6 and len(data.eval) == 2
    assert {e.language for e in [*data.train, *data.eval]} == {"fr"}
    assert data.eval[0].text == "Le chat dort sur le lit."  # raw_transcription: case and punctuation
    features = Featurizer(processor, "offline")(data.eval[0])
    assert prompt_language(processor, features["prompt_ids"]) == "fr"


def test_voxpopuli_partial_export_and_accented_english(tmp_path, processor):
    folder = voxpopuli_folder(tmp_path / "voxpopuli", "en_accented")
    cfg = compose_config(
        [
            "dataset=voxpopuli",
            "hardware=cpu",
            f"dataset.path={folder}",
            "dataset.revision=null",
            "dataset.data_dir=en_accented",
            "dataset.streaming=true",
            "trainer.max_steps=2",
        ]
    )
    data = load_data(cfg.dataset, 0, processor.tokenizer)
    assert [e.language for e in data.eval] == ["en", "en"]
    rows = list(
        stream_features(
            data.train,
            data.adapter,
            Featurizer(processor, "offline"),
            ExampleChecker(cfg.dataset.filters, processor.tokenizer),
            "raise",
        )
    )
    assert len(rows) == 10 and {r["language"] for r in rows} == {"en"}  # partial-train read as train


# --- the check command and train.py on every replica -----------------------------------------


def replicas(granary, yodas, tmp_path) -> dict[str, list[str]]:
    """Overrides that point `dataset=...` at each replica."""
    folder, audio_root = granary
    return {
        "granary manifests": [
            "dataset=granary",
            "model=tiny",
            f"dataset.path={folder}",
            "dataset.languages=[en]",
            "dataset.source=[yodas,voxpopuli]",
            f"dataset.audio_root={audio_root}",
            "dataset.max_eval_samples=4",
        ],
        "granary embedded yodas": [
            "dataset=granary",
            "model=tiny",
            f"dataset.path={folder}",
            "dataset.languages=[en,es]",
            f"dataset.yodas_audio={yodas}",
            "dataset.max_eval_samples=4",
        ],
        "fleurs": [
            "dataset=fleurs",
            f"dataset.path={fleurs_folder(tmp_path / 'fleurs', 'de_de')}",
            "dataset.revision=null",
            "dataset.data_dir=de_de",
        ],
        "voxpopuli": [
            "dataset=voxpopuli",
            f"dataset.path={voxpopuli_folder(tmp_path / 'voxpopuli', 'fr')}",
            "dataset.revision=null",
            "dataset.data_dir=fr",
        ],
    }


def test_check_command_passes_every_replica(granary, yodas, tmp_path, capsys):
    for name, overrides in replicas(granary, yodas, tmp_path).items():
        assert check.main([*overrides, "hardware=cpu", "trainer.max_steps=2"]) == 0, name
        out = capsys.readouterr().out
        assert "no errors" in out and "ERROR" not in out, (name, out)


# FLEURS and VoxPopuli train in `make test-all`: their rows (language included) are read by the
# reader tests above and by check (the reader train.py uses), and tests/test_train_sources.py
# trains train.py on a Hub dataset; Granary's two streamed layouts train here
@pytest.mark.parametrize(
    "name",
    [
        "granary manifests",
        "granary embedded yodas",
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("fleurs", "voxpopuli")),
    ],
)
def test_train_py_trains_on_each_replica(name, granary, yodas, tmp_path, trackio_dir):
    run_dir = tmp_path / "run"
    run_train([*SHORT, *replicas(granary, yodas, tmp_path)[name], f"hydra.run.dir={run_dir}"], trackio_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    results = json.loads((run_dir / "eval_results.json").read_text())
    expected = {
        "granary manifests": {"en"},
        "granary embedded yodas": {"en", "es"},
        "fleurs": {"de"},
        "voxpopuli": {"fr"},
    }[name]
    assert set(results["per_language"]) == expected
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert {p["language"] for p in predictions} == expected and np.isfinite(results["eval_loss"])


def test_granary_through_dataset_hub_recipe(yodas, processor):
    """The README's recipe: the embedded-audio YODAS part read as a plain Hub dataset."""
    cfg = compose_config(
        [
            "dataset=hub",
            "hardware=cpu",
            f"dataset.path={yodas}",
            "dataset.config=Spanish",
            "dataset.train_split=asr_only",
            "dataset.eval_split=null",
            "dataset.streaming=true",
            "dataset.language=es",
            "dataset.columns.duration=duration",
            "dataset.columns.id=utt_id",
            "dataset.max_eval_samples=2",
            "trainer.max_steps=2",
        ]
    )
    validate(cfg)
    data = load_data(cfg.dataset, 0, processor.tokenizer)
    assert [e.language for e in data.eval] == ["es", "es"] and data.eval[0].duration > 1
    assert len(list(data.train)) == 6
