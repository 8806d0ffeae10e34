"""The Dataset tab: record or upload clips, type or correct their transcripts and languages,
listen to and delete them, and save train.jsonl / eval.jsonl for `dataset=jsonl`
(voxtral_exp.data.recordings does the work) in a folder of the workspace."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import soundfile as sf

from voxtral_exp.app import prompts
from voxtral_exp.app.errors import FieldError, user_errors
from voxtral_exp.app.fields import integer, number
from voxtral_exp.app.workspace import DEFAULT_DATASET, Workspace
from voxtral_exp.data.recordings import RecordedDataset

FOLDER = "Dataset folder"  # the field's label, named in messages
HEADERS = ["id", "transcript", "language", "seconds"]


@dataclass
class DatasetTab:
    """What the other tabs use: the folder field and the event of a successful Save."""

    folder: gr.Textbox
    saved: gr.events.Dependency


def dataset(workspace: Workspace, folder: str) -> RecordedDataset:
    return RecordedDataset(workspace.path(folder, FOLDER))


def table(workspace: Workspace, folder: str) -> list[list]:
    """The clips of ``folder`` as rows of the clips table (none while the folder is not a valid one)."""
    try:
        clips = dataset(workspace, folder).clips()
    except FieldError:  # half typed: said when a clip is added or the manifests saved
        return []
    return [[c["id"], c["text"], c["language"], c["duration"]] for c in clips]


@user_errors
def add_clip(
    workspace: Workspace, folder: str, audio: str | None, text: str, language: str
) -> tuple[list[list], str, None, str]:
    clip = dataset(workspace, folder).add(audio, text, language)
    return table(workspace, folder), f"Added clip {clip['id']} ({clip['duration']:.1f} s).", None, ""


class TableSelection(gr.SelectData):
    """The clips table's select event. One sent without its data (through the API) becomes one
    with no index, for select_clip to refuse, instead of a TypeError inside gradio."""

    def __init__(self, target: gr.blocks.Block | None, data: object):
        super().__init__(target, {"index": None, "value": None, **(data if isinstance(data, dict) else {})})


@user_errors
def select_clip(
    workspace: Workspace, folder: str, event: TableSelection
) -> tuple[int, tuple[int, np.ndarray], str, str]:
    """Show the selected clip: its id, audio, transcript and language."""
    recorded = dataset(workspace, folder)
    clips = recorded.clips()  # the table's rows, in order
    row = event.index[0] if isinstance(event.index, (list, tuple)) and event.index else None
    if type(row) is not int or not 0 <= row < len(clips):
        raise FieldError("Clip: select a clip in the table first")
    clip = clips[row]
    samples, rate = sf.read(recorded.audio_file(clip), dtype="float32")
    return clip["id"], (rate, samples), clip["text"], clip["language"]


def clip_number(clip_id: float | None) -> int:
    if clip_id is None:
        raise FieldError("Clip: select a clip in the table first")
    return integer(clip_id, "Clip", 0, 10**6)


@user_errors
def update_clip(
    workspace: Workspace, folder: str, clip_id: float | None, text: str, language: str
) -> tuple[list[list], str]:
    dataset(workspace, folder).update(clip_number(clip_id), text, language)
    return table(workspace, folder), f"Saved clip {clip_number(clip_id)}."


@user_errors
def delete_clip(workspace: Workspace, folder: str, clip_id: float | None) -> tuple[list[list], str, None]:
    dataset(workspace, folder).delete(clip_number(clip_id))
    return table(workspace, folder), f"Deleted clip {clip_number(clip_id)}.", None


@user_errors
def save(workspace: Workspace, folder: str, fraction: float) -> str:
    """Write train.jsonl and eval.jsonl (on success the Train tab takes the folder)."""
    train, evaluation = dataset(workspace, folder).write_manifests(number(fraction, "Eval fraction", 0.05, 0.5))
    n_train, n_eval = (len(p.read_text().splitlines()) for p in (train, evaluation))
    shown = [workspace.show(p) for p in (train, evaluation)]
    return f"Saved {shown[0]} ({n_train} clips) and {shown[1]} ({n_eval} clips)."


def build(page: gr.Blocks, workspace: Workspace) -> DatasetTab:
    """The tab's components and events (inside ``page``)."""
    space = gr.State(workspace)
    with gr.Tab("Dataset"):
        folder = gr.Textbox(DEFAULT_DATASET, label=f"{FOLDER} (in the workspace {workspace.root})", elem_id="folder")
        prompt = prompts.build()
        audio = gr.Audio(
            sources=["upload", "microphone"], type="filepath", label="Upload or record a clip", elem_id="clip-audio"
        )
        with gr.Row():
            transcript = gr.Textbox(label="Transcript", elem_id="transcript")
            language = gr.Textbox("en", label="Language (ISO 639-1)", elem_id="language")
        add_button = gr.Button("Add clip", variant="primary", elem_id="add-clip")
        message = gr.Markdown(elem_id="dataset-message")
        clips = gr.Dataframe(
            headers=HEADERS, interactive=False, label="Clips (select one to listen, correct or delete it)"
        )
        with gr.Row():
            clip_id = gr.Number(label="Clip", precision=0)
            clip_audio = gr.Audio(label="Listen", interactive=False)
            clip_text, clip_language = gr.Textbox(label="Transcript"), gr.Textbox(label="Language")
        with gr.Row():
            update_button, delete_button = gr.Button("Save correction"), gr.Button("Delete clip", variant="stop")
        with gr.Row():
            fraction = gr.Slider(0.05, 0.5, value=0.2, step=0.05, label="Eval fraction")
            save_button = gr.Button("Save train.jsonl / eval.jsonl", elem_id="save-manifests")
        saved = gr.Markdown(elem_id="saved")

    gr.on([page.load, folder.change], table, [space, folder], clips)
    prompt.change(prompts.show_prompt, prompt, transcript)
    add_button.click(add_clip, [space, folder, audio, transcript, language], [clips, message, audio, transcript])
    clips.select(select_clip, [space, folder], [clip_id, clip_audio, clip_text, clip_language])
    update_button.click(update_clip, [space, folder, clip_id, clip_text, clip_language], [clips, message])
    delete_button.click(delete_clip, [space, folder, clip_id], [clips, message, clip_audio])
    return DatasetTab(folder=folder, saved=save_button.click(save, [space, folder, fraction], saved))
