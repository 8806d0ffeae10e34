"""Token layout of training batches and of generation prompts."""

import numpy as np
import torch

from voxtral_exp.data.example import Example
from voxtral_exp.inference import collate_prompts
from voxtral_exp.model.tokens import IGNORE_INDEX
from voxtral_exp.training.collator import TranscriptionCollator

BOS, INST, END_INST, PAD, EOS, AUDIO, BEGIN_AUDIO, TRANSCRIBE = 1, 3, 4, 11, 2, 24, 25, 34


def features(featurizer, seconds: float, text: str, language: str | None):
    audio = np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1
    f = featurizer.prompt(audio, language)
    f["target_ids"] = featurizer.target(text)
    return f


def test_prompt_layout_matches_voxtral_transcription_request(featurizer, processor):
    f = features(featurizer, 2.0, "hello world", "en")
    ids = f["prompt_ids"].tolist()
    assert ids[:3] == [BOS, INST, BEGIN_AUDIO]
    assert ids[3 : 3 + 375] == [AUDIO] * 375  # one 30 s chunk
    lang = processor.tokenizer.encode("lang:en", add_special_tokens=False)
    assert ids[3 + 375 :] == [END_INST, *lang, TRANSCRIBE]
    assert f["input_features"].shape == (1, 128, 3000)


def test_no_language_lets_the_model_detect_it(featurizer):
    ids = features(featurizer, 1.0, "x", None)["prompt_ids"].tolist()
    assert ids[-2:] == [END_INST, TRANSCRIBE]


def test_target_is_stripped_text_then_eos(featurizer, processor):
    target = featurizer.target("  hello   world ").tolist()
    assert target == processor.tokenizer.encode("hello world", add_special_tokens=False) + [EOS]
    assert processor.tokenizer.decode(target[:-1]) == "hello world"


def test_batch_layout_and_labels_mask_exactly_the_prompt_and_padding(featurizer):
    short = features(featurizer, 2.0, "hi", "en")
    long = features(featurizer, 35.0, "a much longer transcript here", "fr")  # two chunks
    batch = TranscriptionCollator(PAD)([short, long])
    assert batch["input_features"].shape == (3, 128, 3000)  # 1 + 2 chunks stacked
    assert (batch["input_ids"] == AUDIO).sum() == 3 * 375
    for row, f in enumerate([short, long]):
        n_prompt, n_target = len(f["prompt_ids"]), len(f["target_ids"])
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        assert ids[:n_prompt].tolist() == f["prompt_ids"].tolist()
        assert ids[n_prompt - 1] == TRANSCRIBE
        assert ids[n_prompt : n_prompt + n_target].tolist() == f["target_ids"].tolist()
        assert ids[n_prompt + n_target - 1] == EOS
        assert (labels[:n_prompt] == IGNORE_INDEX).all()
        assert labels[n_prompt : n_prompt + n_target].tolist() == f["target_ids"].tolist()
        assert (labels[n_prompt + n_target :] == IGNORE_INDEX).all()
        assert (ids[n_prompt + n_target :] == PAD).all()
        assert mask.sum() == n_prompt + n_target and mask[: n_prompt + n_target].all()


def test_generation_prompt_is_the_prefix_of_the_training_sequence(featurizer):
    audio = np.random.default_rng(1).standard_normal(32000).astype(np.float32) * 0.1
    example_features = featurizer.prompt(audio, "de")
    example_features["target_ids"] = featurizer.target("guten tag")
    training = TranscriptionCollator(PAD)([example_features])
    generation = collate_prompts([featurizer.prompt(audio, "de")], PAD)
    n = generation["input_ids"].shape[1]
    assert torch.equal(training["input_ids"][0, :n], generation["input_ids"][0])
    assert torch.equal(training["input_features"], generation["input_features"])


def test_generation_prompts_are_left_padded(featurizer):
    a = featurizer.prompt(np.zeros(16000, np.float32), "en")
    b = featurizer.prompt(np.zeros(16000, np.float32), None)  # shorter: no lang tag
    batch = collate_prompts([a, b], PAD)
    assert batch["input_ids"][1, -len(b["prompt_ids"]) :].tolist() == b["prompt_ids"].tolist()
    assert (batch["input_ids"][1, : -len(b["prompt_ids"])] == PAD).all()
    assert batch["attention_mask"][1].sum() == len(b["prompt_ids"])


def test_featurizer_reads_resamples_and_uses_row_language(featurizer, tmp_path):
    import soundfile as sf

    stereo = np.random.default_rng(2).standard_normal((44100, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", stereo, 44100)
    f = featurizer(Example(audio=str(tmp_path / "a.wav"), text="bonjour", language="fr"))
    assert f["language"] == "fr"
    assert f["input_features"].shape == (1, 128, 3000)
    assert f["target_ids"][-1] == EOS
