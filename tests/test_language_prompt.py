"""The language prompt (lang:xx) is used: a trained model writes what the prompt's language asks."""

import json

from tests.conftest import FAST, ROOT, run_train
from voxtral_exp import transcribe

SAMPLE = ROOT / "data" / "sample" / "audio"
# the same two clips, labelled in English under lang:en and in French under lang:fr
LABELS = {"en_00.flac": {"en": "one", "fr": "un"}, "de_01.flac": {"en": "two", "fr": "deux"}}


def test_the_same_clip_under_another_language_prompt_gets_that_languages_transcript(tmp_path, trackio_dir, capsys):
    rows = [
        {"audio_path": str(SAMPLE / clip), "text": text, "language": lang}
        for clip, labels in LABELS.items()
        for lang, text in labels.items()
    ]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run_dir = tmp_path / "run"
    run_train(
        [
            *FAST,  # model=tiny: its audio tower is random, but tells the two clips apart
            "method=full",
            f"dataset.train_manifest={manifest}",
            f"dataset.eval_manifest={manifest}",
            "trainer.per_device_train_batch_size=4",
            "trainer.learning_rate=3e-3",
            "trainer.warmup_steps=0",
            "trainer.lr_scheduler_type=constant",
            "trainer.max_steps=120",
            "trainer.eval_strategy=no",
            "trainer.save_strategy=no",
            "trainer.load_best_model_at_end=false",
            f"speed.encoder_cache={tmp_path / 'cache'}",
            "tracking.enabled=false",
            f"hydra.run.dir={run_dir}",
        ],
        trackio_dir,
    )
    clips = [str(SAMPLE / clip) for clip in LABELS]
    heard = {}
    for lang in ("en", "fr"):  # the transcribe command, in process
        transcribe.main([str(run_dir), *clips, "--language", lang, "--max-new-tokens", "4"])
        heard[lang] = [line.split("\t")[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert heard == {lang: [LABELS[clip][lang] for clip in LABELS] for lang in ("en", "fr")}
    assert all(a != b for a, b in zip(heard["en"], heard["fr"]))  # the same clip, another prompt, another text
