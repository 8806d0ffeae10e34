"""model=tiny-whisper: a small Voxtral around Whisper tiny.en's pretrained encoder, offline."""

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from tests.conftest import SAMPLE, compose_config
from voxtral_exp.data.audio import load_audio
from voxtral_exp.data.featurize import Featurizer
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.model import whisper_encoder
from voxtral_exp.model.modeling import build_model
from voxtral_exp.model.processor import load_processor


def test_converted_encoder_equals_ctranslate2s_own_encoder():
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder = whisper_encoder.whisper_tiny_model_dir()
    model = build_model(compose_config(["model=tiny-whisper"]).model, torch.float32, seed=0).eval()
    audio = [load_audio(str(SAMPLE / "audio" / name)) for name in ("en_00.flac", "en_05.flac")]
    features = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features.astype(np.float32)), to_cpu=True))
    with torch.no_grad():
        ours = model.model.audio_tower(torch.from_numpy(features)).last_hidden_state.numpy()
    assert ours.shape == expected.shape == (2, 1500, 384)
    # the weights are float16 in the file: agreement to float16 precision of outputs ~10 in size
    np.testing.assert_allclose(ours, expected, atol=5e-3, rtol=1e-3)
    assert np.abs(ours - expected).max() < 1e-3 * np.abs(expected).max()


def test_tiny_whisper_has_whispers_encoder_a_random_language_model_and_80_mel_bins():
    cfg = compose_config(["model=tiny-whisper"])
    a, b = build_model(cfg.model, torch.float32, seed=0), build_model(cfg.model, torch.float32, seed=1)
    tower = a.model.audio_tower
    assert tower.layers[0].self_attn.k_proj.bias is None  # as in Whisper
    assert (
        tower.config.num_mel_bins,
        tower.config.hidden_size,
        len(tower.layers),
        tower.config.max_source_positions,
    ) == (80, 384, 4, 1500)
    pretrained = whisper_encoder.whisper_tiny_encoder_weights()
    for name, tensor in tower.state_dict().items():  # the same pretrained encoder whatever the seed
        assert torch.equal(tensor, pretrained[name]) and torch.equal(tensor, b.model.audio_tower.state_dict()[name])
    lm_a, lm_b = (
        a.model.language_model.layers[0].mlp.up_proj.weight,
        b.model.language_model.layers[0].mlp.up_proj.weight,
    )
    assert not torch.equal(lm_a, lm_b)  # the language model is random, seeded
    processor = load_processor(None, num_mel_bins=80)
    features = Featurizer(processor, "offline")(read_manifest(SAMPLE / "eval.jsonl")[0][0])
    assert features["input_features"].shape == (1, 80, 3000)


def test_conversion_runs_once_and_is_cached(tmp_path, monkeypatch):
    first = whisper_encoder.whisper_tiny_encoder_weights(tmp_path)
    (cached,) = tmp_path.glob("whisper-tiny.en-encoder-*.safetensors")

    def no_second_conversion(path):
        raise AssertionError("the model file was read again")

    monkeypatch.setattr(whisper_encoder, "read_ctranslate2", no_second_conversion)
    again = whisper_encoder.whisper_tiny_encoder_weights(tmp_path)
    assert list(tmp_path.glob("*.safetensors")) == [cached]
    assert all(torch.equal(first[k], again[k]) for k in first)
