"""Sentences to read aloud while recording (the Dataset tab): a text file, one prompt a line,
loaded into the browser session's list; the prompt shown becomes the transcript to correct."""

from __future__ import annotations

import gradio as gr

from voxtral_exp.app.errors import user_errors
from voxtral_exp.data.recordings import read_prompts


@user_errors
def load_prompts(file: str | None) -> tuple[list[str], int, str]:
    prompts = read_prompts(file) if file else []
    return prompts, 0, (prompts[0] if prompts else "")


def show_prompt(prompt: str) -> str:
    """The prompt to read becomes the transcript, ready to be corrected."""
    return prompt


def next_prompt(prompts: list[str], index: int) -> tuple[int, str]:
    if not prompts:
        return 0, ""
    index = (int(index) + 1) % len(prompts)
    return index, prompts[index]


def build() -> gr.Textbox:
    """The prompt row (inside the Dataset tab); returns the shown prompt, for show_prompt."""
    with gr.Row():
        prompts_file = gr.File(label="Prompts to read (text file, one per line)", type="filepath", elem_id="prompts")
        prompt = gr.Textbox(label="Read this", interactive=False)
        next_button = gr.Button("Next prompt")
    prompts, index = gr.State([]), gr.State(0)  # this browser session's prompts and where it stands

    prompts_file.change(load_prompts, prompts_file, [prompts, index, prompt])
    next_button.click(next_prompt, [prompts, index], [index, prompt])
    return prompt
