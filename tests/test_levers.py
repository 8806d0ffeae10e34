"""Each speed lever keeps the loss equal to the plain path on the tiny model."""

import os
import pickle
import tracemalloc

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import SAMPLE, compose_config
from tests.data_fixtures import HUB_COLUMNS, encode
from voxtral_exp.data.dataset import SpeechDataset
from voxtral_exp.data.example import Example
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.data.sources import Data, load_data
from voxtral_exp.model.modeling import apply_method, build_model, unwrap_peft
from voxtral_exp.model.tokens import PAD_TOKEN_ID
from voxtral_exp.training.collator import TranscriptionCollator
from voxtral_exp.training.encoder_cache import EncoderCache, chosen_folder, example_key, fingerprint
from voxtral_exp.training.loss import label_only_loss


@pytest.fixture(scope="module")
def examples():
    return read_manifest(SAMPLE / "train.jsonl")[0][:6]


def lora_model():
    cfg = compose_config(["model=tiny", "method=lora", "method.train_projector=true", "hardware=cpu"])
    return apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method)


def test_cached_encoder_output_gives_the_live_loss(tmp_path, featurizer, examples):
    model = lora_model()
    dataset = SpeechDataset(examples, featurizer)
    cache = EncoderCache(tmp_path, model)
    assert cache.fill(model, dataset, batch_size=4, num_workers=0) == 6
    assert cache.fill(model, dataset, batch_size=4, num_workers=0) == 0  # all there now
    collate = TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True)
    live = collate([dataset[i] for i in range(4)])
    dataset.cache = cache
    cached = collate([dataset[i] for i in range(4)])
    assert "input_features" not in cached and cached["encoder_states"].shape[0] == 4 * 375
    assert torch.equal(live["input_ids"], cached["input_ids"]) and torch.equal(live["labels"], cached["labels"])
    live_labels, cached_labels = live.pop("labels"), cached.pop("labels")
    live_loss = label_only_loss(model(**live), live_labels)
    cached_loss = label_only_loss(model(**cached), cached_labels)  # the audio hook places the cached states
    torch.testing.assert_close(cached_loss, live_loss, rtol=1e-5, atol=1e-5)
    # the projector still learns from cached states
    cached_loss.backward()
    projector_grads = [p.grad for n, p in model.named_parameters() if "multi_modal_projector" in n and p.requires_grad]
    assert projector_grads and all(g is not None and g.abs().sum() > 0 for g in projector_grads)


def test_ranks_fill_disjoint_shares_of_the_cache(tmp_path, featurizer, examples):
    # torchrun ranks fill at the same time: a rank that starts late must still fill its whole
    # share, whatever the others have written already (tests/test_experiments.py runs torchrun)
    model = lora_model()
    dataset = SpeechDataset(examples, featurizer)
    cache = EncoderCache(tmp_path, model)
    assert cache.fill(model, dataset, batch_size=4, num_workers=0, rank=0, world_size=2) == 3
    assert cache.fill(model, dataset, batch_size=4, num_workers=0, rank=1, world_size=2) == 3
    assert all(cache.get(e) is not None for e in examples)


def test_cache_is_invalidated_by_new_weights_or_new_audio(tmp_path, examples):
    model = lora_model()
    before = fingerprint(model)
    with torch.no_grad():
        model.get_base_model().model.audio_tower.layers[0].fc1.weight.add_(1e-3)
    assert fingerprint(model) != before
    assert EncoderCache(tmp_path, model).folder.name == fingerprint(model)
    example = examples[0]
    changed = tmp_path / "changed.flac"
    import soundfile as sf

    audio, rate = sf.read(example.audio)
    sf.write(changed, audio * 0.5, rate)
    assert example_key(example) != example_key(type(example)(audio=str(changed), text=example.text))
    assert example_key(example) != example_key(type(example)(audio=example.audio, text="", offset=0.5))
    # entries are told apart by content, not by the example's origin (which may be empty)
    cache = EncoderCache(tmp_path, model)
    unnamed = [type(example)(audio=example.audio, text=""), type(example)(audio=str(changed), text="")]
    assert cache.path(unnamed[0]) != cache.path(unnamed[1])


def test_a_clip_that_fails_to_decode_gets_no_entry_and_is_skipped_in_every_run(tmp_path, featurizer, examples, caplog):
    broken = tmp_path / "nan.wav"  # its header reads (so screening keeps it), its samples do not decode
    sf.write(broken, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    clips = [examples[0], Example(str(broken), "never heard", "en", origin="train.jsonl:2"), examples[1]]
    model = lora_model()
    for run in ("cold cache", "warm cache"):  # a later run shares the cache: nothing may differ
        dataset = SpeechDataset(clips, featurizer, on_error="skip")
        cache = EncoderCache(tmp_path / "cache", model)
        caplog.clear()
        with caplog.at_level("WARNING"):
            written = cache.fill(model, dataset, batch_size=3, num_workers=0)
            dataset.cache = cache
            served = dataset[1]
        assert written == (2 if run == "cold cache" else 0)
        assert cache.get(clips[1]) is None, run  # no entry: its transcript is never trained on other audio
        assert caplog.text.count("Skipping train.jsonl:2") == 2, run  # by the fill and in training, each run
        assert "no entry for 1 clip(s) whose audio failed to decode" in caplog.text, run
        assert served["text"] == clips[2].text  # the next clip, with its own encoder output
        assert torch.equal(served["encoder_states"], cache.get(clips[2])["states"])


def test_an_eval_clip_that_fails_to_decode_is_dropped_before_training_or_stops_it_at_once(tmp_path, examples):
    """The screen reads headers only: an eval clip whose samples do not decode would stop the final
    WER after all the training (it did, with on_error=skip too)."""
    from voxtral_exp.data.audio import AudioError
    from voxtral_exp.data.dataset import decodable

    broken = tmp_path / "nan.wav"
    sf.write(broken, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    clips = [examples[0], Example(str(broken), "never heard", "en", origin="eval.jsonl:2"), examples[1]]
    report = {}
    assert decodable(clips, "skip", report) == [clips[0], clips[2]]
    assert [d["origin"] for d in report["eval_undecodable"]] == ["eval.jsonl:2"]
    with pytest.raises(AudioError, match="eval.jsonl:2: audio .*nan.wav contains NaN"):
        decodable(clips, "raise", {})


def test_an_unreadable_entry_is_a_miss_recomputed_and_never_unpickled(tmp_path, featurizer, examples, caplog):
    class Payload:  # what a planted pickle does when it is unpickled
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    model = lora_model()
    dataset = SpeechDataset(examples[:4], featurizer)
    cache = EncoderCache(tmp_path / "cache", model)
    cache.fill(model, dataset, batch_size=4, num_workers=0)
    entries = [cache.get(e) for e in examples[:4]]
    planted, crafted, cut, misshapen = (cache.path(e) for e in examples[:4])
    planted.write_bytes(pickle.dumps(Payload(), protocol=2))  # a bare pickle
    torch.save({"states": Payload(), "samples": 1}, crafted)  # torch's own format, with a payload inside
    cut.write_bytes(cut.read_bytes()[:200])  # a copy cut short
    torch.save({"states": torch.zeros(3, 7), "samples": 16000}, misshapen)  # well-formed, but no rows of this encoder
    dataset.cache = cache
    with caplog.at_level("WARNING"):
        served = dataset[0]  # read the live way meanwhile: no UnpicklingError
        assert "input_features" in served and served["text"] == examples[0].text
        assert cache.fill(model, dataset, batch_size=4, num_workers=0) == 4  # each recomputed, in place
    for path in (planted, crafted, cut, misshapen):
        assert f"Encoder cache: unreadable entry {path} (" in caplog.text
    assert "weights_only=False" not in caplog.text and not (tmp_path / "ran").exists()
    for example, entry in zip(examples[:4], entries):
        assert torch.equal(cache.get(example)["states"], entry["states"])


def test_filling_the_cache_places_only_the_audio_tower_on_the_device(tmp_path, featurizer, examples):
    cfg = compose_config(["model=tiny", "method=full", "hardware=cpu"])
    model = apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method)
    # the language model on no device at all (meta): moving it would fail here, as moving all of
    # Voxtral-Small-24B (97 GB in fp32) onto one GPU fails there
    language_model = model.model.language_model.to("meta")
    cache = EncoderCache(tmp_path, model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert cache.fill(model, SpeechDataset(examples[:2], featurizer), 2, 0, device=device) == 2
    assert all(p.is_meta for p in language_model.parameters())  # never moved
    assert {p.device.type for p in model.model.audio_tower.parameters()} == {"cpu"}  # back where it was


def test_sizing_and_keying_the_cache_keep_no_clip_in_memory(tmp_path):
    # Hub rows with the audio embedded: each Example holds its clip's bytes (here 40 clips of 0.8 MB)
    rng = np.random.default_rng(0)
    clips = [encode(rng.uniform(-0.5, 0.5, 16000 * 25).astype(np.float32), 16000, "WAV") for _ in range(40)]
    table = datasets.Dataset.from_dict(
        {"audio": [{"bytes": c, "path": None} for c in clips], "sentence": ["noise"] * 40, "locale": ["en"] * 40}
    )
    table.cast_column("audio", datasets.Audio()).to_parquet(tmp_path / "train.parquet")
    del clips, table
    overrides = ["dataset=hub", f"dataset.path={tmp_path / 'train.parquet'}", *HUB_COLUMNS, "dataset.eval_split=null"]
    cfg = compose_config(["hardware=cpu", f"paths.cache_dir={tmp_path}", *overrides])
    data = load_data(cfg.dataset, 0)
    model = lora_model()
    tracemalloc.start()
    folder = chosen_folder(cfg, data, model)
    cache = EncoderCache(folder, model)
    paths = [cache.path(e) for e in data.train]
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(set(paths)) == len(data.train) == 38  # two held out (dataset.eval_fraction)
    assert held < 2e6, f"{held / 1e6:.0f} MB still held after sizing and keying 32 MB of clips"
    assert peak < 5e6, f"{peak / 1e6:.0f} MB at the peak: the clips were held at once"


def test_cache_refuses_a_training_audio_path():
    from voxtral_exp.run.config import ConfigError, validate

    cfg = compose_config(
        ["hardware=cpu", "method=full", "method.freeze_audio_tower=false", "speed.encoder_cache=/tmp/cache"]
    )
    with pytest.raises(ConfigError, match="speed.encoder_cache needs a frozen audio encoder"):
        validate(cfg)


def test_grouped_batches_keep_the_loss_and_hold_one_chunk_count(tmp_path, featurizer):
    import soundfile as sf
    from transformers import TrainingArguments

    from voxtral_exp.data.example import Example
    from voxtral_exp.training.loss import label_only_loss
    from voxtral_exp.training.trainer import VoxtralTrainer

    rng = np.random.default_rng(0)
    examples = []
    for i, seconds in enumerate([35, 2, 40, 3, 33, 1.5, 31, 2.5]):
        path = tmp_path / f"{i}.wav"
        sf.write(path, (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32), 16000)
        examples.append(Example(audio=str(path), text=f"clip {i}", language="en"))
    dataset = SpeechDataset(examples, featurizer)
    assert dataset.length_groups() == [2, 1, 2, 1, 2, 1, 2, 1]  # 30 s chunks

    model = lora_model()
    collate = TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True)

    def summed_loss(batches):
        total = 0.0
        for indices in batches:
            batch = collate([dataset[i] for i in indices])
            labels = batch.pop("labels")
            with torch.no_grad():
                total += label_only_loss(model(**batch), labels, num_items_in_batch=1).item()
        return total

    mixed = summed_loss([[0, 1], [2, 3], [4, 5], [6, 7]])
    grouped = summed_loss([[0, 2], [4, 6], [1, 3], [5, 7]])
    assert grouped == pytest.approx(mixed, rel=1e-5)

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        use_cpu=True,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = VoxtralTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collate, length_groups=dataset.length_groups()
    )
    seen = []
    for batch in trainer.get_train_dataloader():
        chunks = batch["input_features"].shape[0]
        assert chunks in (2, 4)  # two 1-chunk clips or two 2-chunk clips, never mixed
        seen.append(chunks)
    assert sorted(seen) == [2, 2, 4, 4]


def test_chunk_bucket_sampler_over_several_buckets():
    """Four chunk counts of uneven sizes, batch 2: each full batch holds one count, leftovers come
    last, every example once per epoch, the order fixed by seed and epoch."""
    from voxtral_exp.training.trainer import LengthGroupSampler

    counts = [1, 2, 3, 1, 2, 1, 4, 3, 1, 2, 1, 2, 3]  # 1: five, 2: four, 3: three, 4: one
    sampler = LengthGroupSampler(counts, batch_size=2, seed=7)
    order = list(sampler)
    assert sorted(order) == list(range(len(counts)))
    full, leftovers = order[:10], order[10:]  # 2 + 2 + 1 full batches of 2; one left in buckets 1, 3, 4
    batches = [full[i : i + 2] for i in range(0, 10, 2)]
    assert all(counts[a] == counts[b] for a, b in batches)
    assert sorted(counts[i] for i in leftovers) == [1, 3, 4]
    assert sorted(counts[b[0]] for b in batches) == [1, 1, 2, 2, 3]
    assert list(LengthGroupSampler(counts, 2, seed=7)) == order  # a resumed run sees the same batches
    sampler.set_epoch(1)
    orders = {tuple(order), tuple(sampler)}
    for seed in range(8):
        orders.add(tuple(LengthGroupSampler(counts, 2, seed=seed)))
    assert len(orders) > 5  # shuffled: the buckets' batches are interleaved, not sorted by count
    firsts = {counts[o[0]] for o in orders}
    assert len(firsts) > 1


@pytest.mark.parametrize("method", ["lora", "full"])
def test_activation_checkpointing_keeps_the_update_and_the_frozen_encoder_graph_free(
    tmp_path, featurizer, examples, method
):
    from transformers import TrainingArguments

    from voxtral_exp.training.trainer import VoxtralTrainer

    cfg = compose_config(["model=tiny", f"method={method}", "hardware=cpu"])
    dataset = SpeechDataset(examples[:2], featurizer)

    def one_step(checkpointing: bool):
        model = apply_method(build_model(cfg.model, torch.float32, seed=0), cfg.method)
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"),
            use_cpu=True,
            report_to="none",
            max_steps=1,
            per_device_train_batch_size=2,
            learning_rate=1e-3,
            save_strategy="no",
            remove_unused_columns=False,
            label_names=["labels"],
            dataloader_num_workers=0,
            activation_checkpointing=checkpointing,
        )
        trainer = VoxtralTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True),
            compute_loss_func=label_only_loss,
        )
        encoder_output_needs_grad = []
        voxtral = unwrap_peft(model)
        voxtral.model.audio_tower.register_forward_hook(
            lambda m, i, out: encoder_output_needs_grad.append(out[0].requires_grad)
        )
        trainer.train()
        assert voxtral.is_activation_checkpointing == checkpointing
        weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        return weights, encoder_output_needs_grad

    plain, plain_encoder = one_step(False)
    checkpointed, checkpointed_encoder = one_step(True)
    assert plain_encoder == checkpointed_encoder == [False]  # no graph through the frozen encoder
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6)


def test_the_encoder_cache_is_on_by_default_where_it_pays(tmp_path, caplog, examples):
    model = lora_model()

    def chosen(*overrides, streaming=False):
        cfg = compose_config(["hardware=cpu", f"paths.cache_dir={tmp_path}", *overrides])
        stream = datasets.Dataset.from_dict({"audio": ["a.wav"]}).to_iterable_dataset()
        return chosen_folder(cfg, Data(train=stream if streaming else examples, eval=[]), model)

    with caplog.at_level("INFO"):
        assert chosen() == str(tmp_path / "encoder")  # map-style, frozen encoder: on, size logged
        assert f"~0.00 GB for 6 clips in {tmp_path / 'encoder'}" in caplog.text
        assert chosen(streaming=True) is None and "off, the data is streamed" in caplog.text
        assert (
            chosen("method=full", "method.freeze_audio_tower=false") is None
            and "the audio encoder trains" in caplog.text
        )
        assert (
            chosen("speed.encoder_cache_budget_gb=0.000001") is None
            and "more than speed.encoder_cache_budget_gb" in caplog.text
        )
    assert chosen("speed.encoder_cache=null") is None and chosen(f"speed.encoder_cache={tmp_path}/c") == f"{tmp_path}/c"


def test_cached_encoder_output_gives_the_live_loss_with_clip_tokens(tmp_path, processor, examples):
    from voxtral_exp.data.featurize import Featurizer

    model = lora_model()
    dataset = SpeechDataset(examples, Featurizer(processor, "offline", audio_tokens="clip"))
    cache = EncoderCache(tmp_path, model)
    cache.fill(model, dataset, batch_size=4, num_workers=0)
    collate = TranscriptionCollator(PAD_TOKEN_ID, label_only_logits=True)
    live = collate([dataset[i] for i in range(4)])
    dataset.cache = cache
    cached = collate([dataset[i] for i in range(4)])
    assert cached["encoder_states"].shape[0] == int(live["audio_tokens"].sum()) < 4 * 375  # only the clips' rows
    assert torch.equal(live["input_ids"], cached["input_ids"])
    labels = [batch.pop("labels") for batch in (live, cached)]
    losses = [label_only_loss(model(**batch), batch_labels) for batch, batch_labels in zip((live, cached), labels)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
