"""`final/README.md`: a Hugging Face model card holding the run's real numbers (its metadata and
model-index through huggingface_hub's ModelCardData and EvalResult)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from voxtral_exp.files import write_atomic

REPO = "REPO"  # replaced by the Hub id on push; a local path works the same
MAX_NEW_TOKENS = 128  # the generation budget of the card's and the Space's code, as the app's


def loading_code(resolved: dict[str, Any]) -> tuple[str, str]:
    """(imports, statements) that load final/ (at REPO) with plain transformers / peft; for a
    model that reads clip-length prompts, also voxtral_exp's own audio plumbing, as source
    (voxtral_exp.model.tokens and .audio_path: the very functions training and transcribe use)."""
    model_cfg, method = resolved["model"], resolved["method"]["name"]
    realtime = model_cfg.get("family") == "realtime"
    model_class, processor_class = (
        ("VoxtralRealtimeForConditionalGeneration", "VoxtralRealtimeProcessor")
        if realtime
        else ("VoxtralForConditionalGeneration", "VoxtralProcessor")
    )
    imports = f"from transformers import {model_class}, {processor_class}\n"
    if method == "lora":
        revision = f', revision="{model_cfg["revision"]}"' if model_cfg.get("revision") else ""  # the pinned base
        base = (
            f'{model_class}.from_pretrained("{REPO}", subfolder="base_model")'
            if model_cfg["random_init"]
            else f'{model_class}.from_pretrained("{model_cfg["name_or_path"]}"{revision})'
        )
        imports = "from peft import PeftModel\n" + imports
        load = f'model = PeftModel.from_pretrained({base}, "{REPO}")'
    else:
        load = f'model = {model_class}.from_pretrained("{REPO}")'
    if realtime:
        imports += "from transformers.audio_utils import load_audio\n"
        return imports, f'processor = {processor_class}.from_pretrained("{REPO}", mistral_format=True)\n{load}'
    if model_cfg["audio_tokens"] == "clip":
        imports = f"{imports}{clip_plumbing()}\n"
    return imports, f'processor = {processor_class}.from_pretrained("{REPO}", mistral_format=True)\n{load}'


def clip_plumbing() -> str:
    """The source of voxtral_exp's clip-length audio path, to run without voxtral_exp installed."""
    from voxtral_exp.model import audio_path, tokens

    functions = [tokens.chunks, tokens.audio_tokens, audio_path.encode, audio_path.encode_clips]
    functions.append(audio_path.prompt_embeddings)
    constants = ["SAMPLING_RATE", "CHUNK_SAMPLES", "AUDIO_TOKENS_PER_CHUNK", "MEL_FRAMES_PER_TOKEN"]
    constants += ["CLIP_MARGIN_S", "CLIP_BUCKET"]
    lines = [
        "import math",
        "",
        "import soundfile as sf",
        "import torch",
        "import torch.nn.functional as F",
        "",
        "# voxtral_exp's audio plumbing (voxtral_exp/model/tokens.py, audio_path.py): this model reads",
        "# one [AUDIO] token per 80 ms of the clip (plus a margin), not 375 per 30 s chunk.",
        *(f"{name} = {getattr(tokens, name)!r}" for name in constants),
    ]
    return "\n".join(lines) + "\n\n\n" + "\n\n".join(inspect.getsource(f) for f in functions)


def transcription_code(resolved: dict[str, Any], language: str, audio: str) -> str:
    """Statements that print the transcript of ``audio`` (expressions, as source): Voxtral's own
    prompt, or, for a `model.audio_tokens=clip` model, the prompt with the clip's [AUDIO] tokens."""
    if resolved["model"].get("family") == "realtime":  # one token per 80 ms, as served (at the delay trained)
        return f"""audio = load_audio({audio}, sampling_rate=16000) if isinstance({audio}, str) else {audio}
inputs = processor(audio, sampling_rate=16000, return_tensors="pt").to(model.device, dtype=model.dtype)
out = model.generate(**inputs, do_sample=False)
text = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()"""
    model_id = resolved["model"]["name_or_path"] or REPO
    request = f"""inputs = processor.apply_transcription_request(language={language}, audio={audio}, model_id="{model_id}")
inputs = inputs.to(model.device, dtype=model.dtype)
"""
    if resolved["model"]["audio_tokens"] != "clip":
        return (
            request
            + f"""out = model.generate(**inputs, max_new_tokens={MAX_NEW_TOKENS}, do_sample=False)
text = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()"""
        )
    window = resolved["model"]["encoder_window"] == "clip"
    return (
        request
        + f"""n = audio_tokens(round(sf.info({audio}).duration * SAMPLING_RATE), "clip")
ids = inputs["input_ids"][0]
run = (ids == model.config.audio_token_id).nonzero().flatten()
ids = torch.cat([ids[: run[0]], ids.new_full((n,), model.config.audio_token_id), ids[run[-1] + 1 :]])[None]
voxtral = (model.get_base_model() if hasattr(model, "get_base_model") else model).model
chunks = torch.tensor([inputs["input_features"].shape[0]])
embeds = prompt_embeddings(voxtral, ids, inputs["input_features"], None, torch.tensor([n]), chunks, {window})
out = model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), max_new_tokens={MAX_NEW_TOKENS}, do_sample=False)
text = processor.batch_decode(out, skip_special_tokens=True)[0].strip()"""
    )


def usage_snippet(resolved: dict[str, Any], language: str | None) -> str:
    """Plain transformers / peft code that loads final/ and transcribes a file."""
    imports, load = loading_code(resolved)
    return f"{imports}\n{load}\n{transcription_code(resolved, repr(language), repr('speech.wav'))}\nprint(text)"


def space_files(resolved: dict[str, Any], repo_id: str) -> dict[str, str]:
    """app.py and requirements.txt of a Gradio demo Space that loads the model from ``repo_id``."""
    imports, load = loading_code(resolved)
    body = transcription_code(resolved, "language.strip() or None", "audio").replace("\n", "\n    ")
    app = f'''"""Transcribe speech with {repo_id}, a Voxtral fine-tuned with voxtral_exp."""

import gradio as gr
{imports}
{load}
model.eval()


def transcribe(audio, language):
    if audio is None:
        raise gr.Error("Record or upload some speech first.")
    {body}
    return text


demo = gr.Interface(
    transcribe,
    [gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech"),
     gr.Textbox("", label="Language (ISO 639-1; empty: the model detects it)")],
    gr.Textbox(label="Transcript"),
    title="{repo_id}",
    description="Voxtral speech-to-text, fine-tuned with voxtral_exp.",
)

if __name__ == "__main__":
    demo.launch()
'''.replace(REPO, repo_id)
    requirements = ["torch", "transformers>=5.20,<6", "mistral-common>=1.13", "soundfile", "soxr"]
    if resolved["method"]["name"] == "lora":
        requirements.append("peft>=0.21")
    return {"app.py": app, "requirements.txt": "\n".join(requirements) + "\n"}


CARD = """---
{metadata}
---

# {name}

Voxtral speech-to-text model fine-tuned with voxtral_exp from {base}.

- **Method:** {method}
- **Audio:** {audio}
- **Trainable parameters:** {trainable:,} of {total:,}
- **Training data:** `{data_kind}` — `{data_name}` (languages: {languages})
- **Steps:** {steps} (final train loss {train_loss:.4f})

## Results

Word and character error rates on the evaluation set (normaliser: `{normalizer}`, {decoding}
decoding); eval loss {eval_loss:.4f}.

| language | WER | CER | clips |
|---|---|---|---|
{results}

## Usage

```python
{usage}
```

{serving}

## Training hyperparameters

| key | value |
|---|---|
{hyperparameters}

Reproduce: `python -m voxtral_exp.reproduce RUN_DIR` with the run directory this model came from
(its `resolved_config.yaml` and `run.json`; git commit `{commit}`).

## Framework versions

{packages}
"""
HYPERPARAMETERS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "seed",
    "bf16",
)


def model_card(
    resolved: dict[str, Any],
    eval_results: dict[str, Any],
    train_results: dict[str, Any],
    run: dict[str, Any],
    languages: list[str],
) -> str:
    """The card's text: Hub metadata, what was trained on what, the results, working usage code."""
    model_cfg, data, evaluation = resolved["model"], resolved["dataset"], resolved["evaluation"]
    base = None if model_cfg["random_init"] else model_cfg["name_or_path"]
    return CARD.format(
        metadata=card_metadata(resolved, eval_results, languages).to_yaml(),
        name=resolved["tracking"]["name"],
        base=base or f"a randomly initialised `{model_cfg['name']}` Voxtral (no pretrained weights)",
        method=method_text(resolved["method"]),
        audio=audio_text(model_cfg),
        trainable=train_results.get("parameters_trainable", 0),
        total=train_results.get("parameters_total", 0),
        data_kind=data["name"],
        data_name=training_data_name(data),
        languages=", ".join(languages) or "unspecified",
        steps=train_results.get("global_step"),
        train_loss=train_results.get("train_loss", float("nan")),
        normalizer=evaluation["normalizer"],
        decoding=decoding_text(evaluation, eval_results),
        eval_loss=eval_results.get("eval_loss", float("nan")),
        results=results_table(eval_results),
        usage=usage_snippet(resolved, languages[0] if languages else None),
        serving=serving_text(model_cfg),
        hyperparameters="\n".join(f"| {k} | {resolved['trainer'].get(k)} |" for k in HYPERPARAMETERS),
        commit=run.get("git", {}).get("commit"),
        packages="\n".join(f"- {name} {version}" for name, version in run.get("packages", {}).items() if version),
    )


def decoding_text(evaluation: dict[str, Any], eval_results: dict[str, Any]) -> str:
    if "eval_delay_ms" in eval_results:  # a Realtime model: every figure holds at the delay it streamed with
        return f"greedy streaming ({eval_results['eval_delay_ms']} ms delay)"
    return "greedy" if evaluation["num_beams"] == 1 else "beam search"


def training_data_name(data: dict[str, Any]) -> str:
    return str(data.get("path") or data.get("train_manifest"))


def card_metadata(resolved: dict[str, Any], eval_results: dict[str, Any], languages: list[str]) -> ModelCardData:
    """The Hub's YAML block: library, base model, tags, languages and the model-index results."""
    model_cfg, method, data = resolved["model"], resolved["method"]["name"], resolved["dataset"]
    results = [
        EvalResult(
            task_type="automatic-speech-recognition",
            task_name="Speech recognition",
            dataset_type=str(data["name"]),
            dataset_name=training_data_name(data),
            metric_type=m,
            metric_value=round(float(eval_results[f"eval_{m}"]), 4),
            metric_name=m.upper(),
        )
        for m in ("wer", "cer")
        if f"eval_{m}" in eval_results
    ]
    return ModelCardData(
        library_name="peft" if method == "lora" else "transformers",
        base_model=None if model_cfg["random_init"] else model_cfg["name_or_path"],
        pipeline_tag="automatic-speech-recognition",
        tags=["voxtral", "voxtral_exp", "lora" if method == "lora" else "full-fine-tuning"],
        language=languages or None,
        metrics=["wer", "cer"],
        model_name=resolved["tracking"]["name"],
        eval_results=results or None,
    )


# What benchmarks/learning.py measured for a clip-trained model served the padded way (RESULTS.md)
PADDED_SERVING = (
    "on the learning benchmark, models trained with clip tokens scored a held-out WER of 0.85 (0.96 with the "
    "encoder window) served padded, against 0.037 (0.030) served as trained, on English digits; in four "
    "languages 0.81-1.03 against 0.05-0.14 (medians of 3 seeds; benchmarks/RESULTS.md, Clip tokens)"
)


# What benchmarks/learning.py --task transfer measured: why chunk is the default (RESULTS.md)
PADDING_PRETRAINED = (
    "a model pretrained on the padding and fine-tuned with LoRA on a new language reached a held-out WER of "
    "0.29 with 375 tokens per chunk against 0.69-0.70 with clip tokens, at equal steps (median of 3 seeds; "
    "benchmarks/RESULTS.md, Clip tokens as the default?)"
)


def audio_text(model_cfg: dict[str, Any]) -> str:
    if model_cfg.get("family") == "realtime":
        delay = f"a {model_cfg['delay_ms']} ms delay" if model_cfg.get("delay_ms") else "its tokenizer's delay"
        return (
            f"streamed, one text token per 80 ms frame, at {delay} (`model.delay_ms`, written into this folder's "
            "tekken.json; the results below state it): trained on word-aligned text streams (voxtral_exp.realtime)"
        )
    if model_cfg["audio_tokens"] != "clip":
        return (
            "375 [AUDIO] tokens per 30 s chunk, as Voxtral's own and voxtral_exp's default (any Voxtral server "
            f"serves it; {PADDING_PRETRAINED})"
        )
    encoder = "on each clip's own frames" if model_cfg["encoder_window"] == "clip" else "on 30 s chunks"
    return (
        "only the [AUDIO] tokens that cover each clip (one per 80 ms, plus 0.5 s, rounded up to 8; "
        f"`model.audio_tokens=clip`), the encoder {encoder}. Serve it with the code below or voxtral_exp: a "
        "standard Voxtral server (transformers' processor as is, mistral-common, vLLM) pads every clip to 30 s, "
        f"which this model was not trained on and transcribes badly ({PADDED_SERVING}). Trained from a padding-"
        f"pretrained base, clip tokens cost accuracy: {PADDING_PRETRAINED}"
    )


def serving_text(model_cfg: dict[str, Any]) -> str:
    """How to serve it at scale: vLLM through voxtral_exp's export, or, for a clip-token model, why not."""
    if model_cfg.get("family") == "realtime":
        return (
            "**Serving.** This folder loads in transformers as above (its streaming generation is what "
            "voxtral_exp evaluated) and in `python -m voxtral_exp.transcribe`. voxtral_exp's export to "
            "Mistral's format covers the 2507 models only, not yet Realtime checkpoints."
        )
    if model_cfg["audio_tokens"] == "clip":
        return (
            "**Serving.** This model reads clip-length audio, which no Voxtral server states: voxtral_exp's "
            "export to Mistral's format (what vLLM loads) refuses it. Serve it with the code above, "
            "`python -m voxtral_exp.transcribe`, voxtral_exp's web app or its demo Space."
        )
    return (
        "**Serving with vLLM.** Export the run to Mistral's native layout, then serve it:\n\n"
        "```bash\npython -m voxtral_exp.export RUN_DIR --out DIR\n"
        "vllm serve DIR --tokenizer-mode mistral --config-format mistral --load-format mistral\n```\n\n"
        "and transcribe through its OpenAI-compatible API (`client.audio.transcriptions.create(model=DIR, "
        "file=open('speech.wav', 'rb'))`)."
    )


def method_text(method: dict[str, Any]) -> str:
    if method["name"] == "lora":
        return (
            f"LoRA on the language model (r={method['r']}, alpha={method['alpha']}, "
            f"dropout={method['dropout']}, targets {', '.join(method['target_modules'])}; "
            f"projector trained: {method['train_projector']}); audio encoder frozen"
        )
    return (
        f"full fine-tuning of the language model (projector trained: {method['train_projector']}, "
        f"audio encoder frozen: {method['freeze_audio_tower']})"
    )


def results_table(eval_results: dict[str, Any]) -> str:
    """Rows of WER, CER and clip count: all clips, then each language."""
    per_language = eval_results.get("per_language", {})
    nan = float("nan")
    rows = [
        f"| all | {eval_results.get('eval_wer', nan):.4f} | {eval_results.get('eval_cer', nan):.4f} | "
        f"{sum(v['n'] for v in per_language.values()) or ''} |"
    ]
    rows += [f"| {lang} | {v['wer']:.4f} | {v['cer']:.4f} | {v['n']} |" for lang, v in per_language.items()]
    return "\n".join(rows)


def write_model_card(final_dir: Path, text: str) -> None:
    write_atomic(final_dir / "README.md", str(ModelCard(text)))  # ModelCard checks the metadata parses
