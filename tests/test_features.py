"""The fast featuriser equals the processor's transcription request exactly."""

import numpy as np
import pytest
import torch

from voxtral_exp.data.featurize import Featurizer


@pytest.mark.parametrize("seconds", [0.01, 0.7, 2.0, 29.99, 30.0, 31.5, 61.0])
@pytest.mark.parametrize("language", ["en", None])
def test_featurizer_equals_apply_transcription_request(processor, seconds, language):
    audio = (np.random.default_rng(int(seconds * 100)).standard_normal(int(seconds * 16000)) * 0.2).astype(np.float32)
    reference = processor.apply_transcription_request(
        language=language, audio=audio, sampling_rate=16000, format="wav", model_id="offline"
    )
    ours = Featurizer(processor, "offline").prompt(audio, language)
    assert torch.equal(ours["prompt_ids"], reference["input_ids"][0])
    assert ours["input_features"].shape == reference["input_features"].shape
    torch.testing.assert_close(ours["input_features"], reference["input_features"], rtol=0, atol=1e-5)
