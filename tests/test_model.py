"""Model building, method application, and the label-only loss head."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import compose_config
from voxtral_exp.model.audio_path import inner
from voxtral_exp.model.modeling import (
    apply_method,
    build_model,
    count_parameters,
    torch_dtype,
)
from voxtral_exp.model.tokens import PAD_TOKEN_ID
from voxtral_exp.training.collator import TranscriptionCollator
from voxtral_exp.training.loss import label_only_loss


@pytest.fixture(scope="module")
def batch(featurizer):
    rng = np.random.default_rng(0)
    feats = []
    for seconds, text, lang in [(2.0, "hello there", "en"), (31.0, "bonjour tout le monde", "fr")]:
        f = featurizer.prompt(rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1, lang)
        f["target_ids"] = featurizer.target(text)
        feats.append(f)
    return feats


def tiny(method: str):
    cfg = compose_config(["model=tiny", f"method={method}", "hardware=cpu"])
    return apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method), cfg


def test_tiny_model_is_seeded_and_uses_voxtral_interfaces():
    cfg = compose_config(["model=tiny"])
    a, b = build_model(cfg.model, torch.float32, 0), build_model(cfg.model, torch.float32, 0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.audio_token_id == 24 and a.config.text_config.vocab_size == 131072
    assert count_parameters(a)[0] < 10_000_000


def test_lora_adapts_only_the_language_model():
    model, _ = tiny("lora")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".language_model." in n and ".lora_" in n for n in trainable)
    assert not any("audio_tower" in n and "lora" in n for n, _ in model.named_parameters())


def test_lora_can_train_the_projector():
    cfg = compose_config(["model=tiny", "method=lora", "method.train_projector=true"])
    model = apply_method(build_model(cfg.model, torch.float32, 0), cfg.method)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("multi_modal_projector" in n for n in trainable)
    assert not any("audio_tower" in n for n in trainable)


def test_full_trains_language_model_and_freezes_the_audio_tower():
    model, _ = tiny("full")
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith("model.audio_tower.")), name


def test_full_with_frozen_embeddings_updates_everything_but_the_vocabulary_matrices(batch):
    cfg = compose_config(["model=tiny", "method=full", "method.train_embeddings=false", "hardware=cpu"])
    model = apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method)
    vocab = {"model.language_model.embed_tokens.weight", "lm_head.weight"}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(**TranscriptionCollator(PAD_TOKEN_ID)(batch)).loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name not in vocab and not name.startswith("model.audio_tower.")), name


@pytest.mark.parametrize("method", ["lora", "full"])
def test_label_only_loss_equals_full_logits_loss(batch, method):
    model, _ = tiny(method)
    plain = TranscriptionCollator(PAD_TOKEN_ID)(batch)
    fast = TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True)(batch)
    reference = model(**plain).loss
    labels = fast.pop("labels")
    outputs = model(**fast)
    n_targets = (labels != -100).sum()
    assert outputs.logits.shape[0] == n_targets  # only the label positions were projected
    loss = label_only_loss(outputs, labels)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    loss.backward()  # and it trains
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_gpu_precision_keeps_trainable_weights_and_adamw_states_in_fp32(batch, method):
    """model.dtype=auto with bf16 (hardware=gpu): LoRA keeps the frozen base in bf16 and its
    adapters in fp32; full fine-tuning keeps fp32 master weights; both train under bf16 autocast.
    One real Trainer step (CPU autocast stands in for CUDA's) and the optimizer states are read."""
    from transformers import Trainer, TrainingArguments

    cfg = compose_config(["model=tiny", f"method={method}", "hardware=cpu"])
    model = apply_method(build_model(cfg.model, torch_dtype("auto", bf16=True, method=method), seed=0), cfg.method)
    collate = TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True)
    args = TrainingArguments(
        output_dir="/tmp/unused",
        bf16=True,
        use_cpu=True,
        max_steps=1,
        report_to="none",
        per_device_train_batch_size=2,
        save_strategy="no",
        remove_unused_columns=False,
        label_names=["labels"],
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=batch, data_collator=collate, compute_loss_func=label_only_loss
    )
    trainer.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    states = [s for p in trainable for s in trainer.optimizer.state[p].values() if torch.is_tensor(s) and s.ndim]
    assert states and all(s.dtype == torch.float32 for s in states)  # AdamW moments: fp32
    positions = inner(model).audio_tower.embed_positions.weight  # fp32 in Voxtral (_keep_in_fp32_modules_strict)
    assert positions.dtype == torch.float32
    base = {p.dtype for p in frozen if p.ndim == 2 and p.shape[0] >= 64 and p is not positions}
    assert base == ({torch.bfloat16} if method == "lora" else {torch.float32})


# peft's save_pretrained looks up the base's config.json on the Hub to see if its vocabulary changed: offline here
@pytest.mark.filterwarnings("ignore:Unable to fetch remote file", "ignore:Could not find a config file")
def test_a_pinned_base_revision_is_the_one_a_lora_adapter_is_served_on(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from omegaconf import OmegaConf

    from voxtral_exp.model.modeling import load_trained, unwrap_peft
    from voxtral_exp.model.processor import build_offline_processor
    from voxtral_exp.run.model_card import REPO, loading_code

    # the Hub's own cache, read offline (as HF_HUB_CACHE and HF_HUB_OFFLINE=1 set it), holding
    # someone/tiny-voxtral at the tag v1, which the run pins, and at main, which has moved on since
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    repo = tmp_path / "hub" / "models--someone--tiny-voxtral"
    tiny = compose_config(["model=tiny", "hardware=cpu"]).model
    embeddings = {}
    for seed, ref in ((0, "v1"), (1, "main")):
        commit = f"{seed + 1:040x}"
        model = build_model(tiny, torch.float32, seed)
        model.save_pretrained(repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        embeddings[ref] = model.get_input_embeddings().weight

    def base_of(model: torch.nn.Module) -> list[str]:
        weight = unwrap_peft(model).get_input_embeddings().weight
        return [ref for ref, w in embeddings.items() if torch.equal(weight, w)]

    pinned = ["model.random_init=false", "model.name_or_path=someone/tiny-voxtral", "model.revision=v1"]
    cfg = compose_config(["model=tiny", "hardware=cpu", "method=lora", *pinned])
    trained = apply_method(build_model(cfg.model, torch.float32, cfg.seed), cfg.method, cfg.model.revision)
    final = tmp_path / "final"
    trained.save_pretrained(final)
    build_offline_processor().save_pretrained(final)
    assert json.loads((final / "adapter_config.json").read_text())["revision"] == "v1"
    imports, statements = loading_code({"model": OmegaConf.to_container(cfg.model), "method": {"name": "lora"}})
    card = {}
    exec(imports + statements.replace(REPO, str(final)), card)  # the model card's code, as written
    assert base_of(trained) == base_of(load_trained(str(final))) == base_of(card["model"]) == ["v1"]


def test_the_saved_base_of_a_lora_run_on_random_weights_is_the_model_built_from_its_seed(tmp_path):
    """final/base_model is saved from the trained LoRA model's frozen weights (no rebuild): after a
    step that moves the adapters and the projector, it loads back equal to the base built from the
    seed, every weight (the projector's original, not its trained copy)."""
    from transformers import VoxtralForConditionalGeneration

    from voxtral_exp.model.modeling import apply_method, build_model, frozen_base, unwrap_peft

    cfg = compose_config(["model=tiny", "method=lora", "method.train_projector=true"])
    model = apply_method(build_model(cfg.model, torch.float32, 0), cfg.method)
    trained = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in trained:
            p.add_(0.1)
    unwrap_peft(model).save_pretrained(tmp_path, state_dict=frozen_base(model))
    saved = VoxtralForConditionalGeneration.from_pretrained(tmp_path).state_dict()
    built = build_model(cfg.model, torch.float32, 0).state_dict()
    assert saved.keys() == built.keys() and all(torch.equal(saved[k], built[k]) for k in built)
