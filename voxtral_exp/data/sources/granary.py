"""`dataset=granary`: NVIDIA Granary as published, one part per <language>_<source> config, mixed.

Checked against the published dataset (the nvidia/Granary card and file listing, NVIDIA's
NeMo-speech-data-processor granary config): one config per <language>_<source>, splits `asr` and
`ast`, JSONL manifests <lang>/<source>/<lang>_asr*.jsonl holding no audio. The YODAS part's audio
is published separately, embedded (espnet/yodas-granary); every other source's audio comes from
its own distribution, under `dataset.audio_root`.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from omegaconf import DictConfig

from voxtral_exp.data.hf import Columns, DataSourceError, ExampleRows, RowAdapter, as_example_rows, load_split, prepare
from voxtral_exp.data.languages import LanguageError, language_code
from voxtral_exp.data.sources.base import Data, hf_data, rest_after, take

# NVIDIA Granary (nvidia/Granary, checked against its card, file listing and NVIDIA's
# NeMo-speech-data-processor granary config): one config per <language>_<source>, splits
# `asr` and `ast`, JSONL manifests <lang>/<source>/<lang>_asr*.jsonl with these row keys.
GRANARY_SOURCES = ("yodas", "ytc", "voxpopuli", "librilight")
GRANARY_COLUMNS = Columns(
    audio="audio_filepath", text="text", language="source_lang", offset="offset", duration="duration", id="utt_id"
)
# espnet/yodas-granary: the YODAS part with the audio embedded (parquet); configs are language
# names, split `asr_only`.
YODAS_EMBEDDED_COLUMNS = Columns(audio="audio", text="text", duration="duration", id="utt_id")
YODAS_EMBEDDED_SPLIT = "asr_only"
GRANARY_LANGUAGES = {
    "bg": "Bulgarian",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fi": "Finnish",
    "fr": "French",
    "hr": "Croatian",
    "hu": "Hungarian",
    "it": "Italian",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mt": "Maltese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sv": "Swedish",
    "uk": "Ukrainian",
}  # values: espnet/yodas-granary's config names


@dataclass(frozen=True)
class GranaryPart:
    """One Granary config to read: <language>_<source> manifests, or YODAS with embedded audio."""

    language: str
    source: str
    path: str
    config: str
    split: str
    columns: Columns
    embedded: bool

    @property
    def where(self) -> str:
        return f"{self.path}[{self.config}/{self.split}]"


def granary_parts(cfg: DictConfig) -> list[GranaryPart]:
    """The configs `dataset.languages` x `dataset.source` select, in that order (weights follow it).

    YODAS without `dataset.audio_root` reads espnet/yodas-granary (audio embedded); every other
    part reads nvidia/Granary's manifests and the audio under `dataset.audio_root`.
    """
    parts = []
    for language in (language_code(lang) for lang in cfg.languages):
        for source in granary_sources(cfg):
            if source == "yodas" and not cfg.audio_root:
                parts.append(
                    GranaryPart(
                        language,
                        source,
                        cfg.yodas_audio,
                        GRANARY_LANGUAGES.get(language, language),
                        YODAS_EMBEDDED_SPLIT,
                        YODAS_EMBEDDED_COLUMNS,
                        embedded=True,
                    )
                )
            else:
                parts.append(
                    GranaryPart(
                        language, source, cfg.path, f"{language}_{source}", cfg.task, GRANARY_COLUMNS, embedded=False
                    )
                )
    return parts


def granary_sources(cfg: DictConfig) -> list[str]:
    return [cfg.source] if isinstance(cfg.source, str) else list(cfg.source)


def check_granary(cfg: DictConfig) -> None:
    """Every selected config and split exists: read from the dataset cards, no data loaded."""
    parts = granary_parts(cfg)
    for path in dict.fromkeys(p.path for p in parts):
        try:
            available = datasets.get_dataset_config_names(path, revision=cfg.revision if path == cfg.path else None)
        except Exception as e:  # noqa: BLE001 - no network, no such repo, unreadable card
            raise DataSourceError(f"dataset=granary: cannot read the configs of {path}: {e}") from e
        missing = [p.config for p in parts if p.path == path and p.config not in available]
        if missing:
            raise DataSourceError(
                f"dataset=granary: {path} has no config {', '.join(missing)} (dataset.languages x dataset.source). "
                f"Configs that exist: {', '.join(sorted(available))}"
            )
    for part in parts:
        try:
            splits = datasets.get_dataset_split_names(part.path, part.config)
        except Exception as e:  # noqa: BLE001 - no network, unreadable card
            raise DataSourceError(f"dataset=granary: cannot read the splits of {part.where}: {e}") from e
        if part.split not in splits:
            raise DataSourceError(
                f"dataset=granary: {part.path} config {part.config} has no split {part.split!r} "
                f"(dataset.task); splits: {splits}"
            )


def read_granary(cfg: DictConfig, seed: int) -> Data:
    """Granary: one part per <language>_<source> config, mixed by `dataset.weights`; each row's
    language is its `source_lang`, else its config's. The first max_eval_samples rows (split
    across the parts) are held out."""
    parts = granary_parts(cfg)
    n_eval = max(1, cfg.max_eval_samples // len(parts))
    trains, evaluation, bad_eval = [], [], []
    for part in parts:
        raw = load_split(part.path, part.split, part.config, cfg.streaming, cfg.revision if not part.embedded else None)
        raw, columns, labels = prepare(raw, part.columns, part.where)
        adapter = RowAdapter(columns, part.where, None if part.embedded else cfg.audio_root, part.language, labels)
        rows = as_example_rows(raw, adapter)  # one schema for every part, so that they can be mixed
        head, bad = take(rows, ExampleRows(part.where), n_eval)
        evaluation += head
        bad_eval += bad
        trains.append(rest_after(rows, n_eval, part.where, "dataset.max_eval_samples", len(parts)))
    weights = list(cfg.weights) if cfg.weights else None
    train = (
        trains[0]
        if len(trains) == 1
        else datasets.interleave_datasets(
            trains, probabilities=normalise(weights), seed=seed, stopping_strategy="all_exhausted"
        )
    )
    where = f"{cfg.path}[{'+'.join(p.config for p in parts)}]"
    return hf_data(train, evaluation, bad_eval, ExampleRows(where), cfg, seed)


def normalise(weights: list[float] | None) -> list[float] | None:
    if weights is None:
        return None
    total = sum(weights)
    return [w / total for w in weights]


def granary_problems(data: DictConfig) -> list[str]:
    """What is wrong with a `dataset=granary` config, each problem naming its key."""
    problems = []
    sources = granary_sources(data)
    for language in data.languages:
        try:
            code = language_code(language)
        except LanguageError as e:
            problems.append(f"dataset.languages: {e}")
            continue
        if code not in GRANARY_LANGUAGES:
            problems.append(
                f"dataset.languages: {language!r} is not a Granary language; "
                f"Granary has {', '.join(sorted(GRANARY_LANGUAGES))}"
            )
    if not data.languages:
        problems.append("dataset.languages is empty: name at least one, e.g. [en]")
    unknown = [s for s in sources if s not in GRANARY_SOURCES]
    if unknown or not sources:
        problems.append(f"dataset.source={data.source}: expected one or a list of {', '.join(GRANARY_SOURCES)}")
    if data.task == "ast":
        problems.append(
            "dataset.task=ast (speech translation, target `answer`) is not supported: voxtral_exp trains "
            "transcription with Voxtral's transcription prompt, and training translations under it would teach "
            "the model to 'transcribe' into another language. Use dataset.task=asr"
        )
    elif data.task != "asr":
        problems.append(f"dataset.task={data.task}: expected asr")
    n_configs = len(data.languages) * len(sources)
    if data.weights and len(data.weights) != n_configs:
        configs = [f"{lang}_{source}" for lang in data.languages for source in sources]
        problems.append(
            f"dataset.weights has {len(data.weights)} entries for {n_configs} configs: "
            f"one per config, in the order {configs}"
        )
    if not data.audio_root and any(s != "yodas" for s in sources):
        problems.append(
            f"dataset.source={data.source}: nvidia/Granary publishes manifests only, and only the YODAS part has an "
            "embedded-audio copy. Download the audio of the other sources (VoxPopuli, YouTube-Commons, LibriLight) "
            "and set dataset.audio_root to the folder that mirrors the manifests' audio_filepath (README)"
        )
    return problems
