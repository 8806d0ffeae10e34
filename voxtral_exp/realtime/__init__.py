"""Voxtral Realtime (the streaming 4B, transformers' VoxtralRealtimeForConditionalGeneration).

The model reads one audio frame (80 ms) and one text token per position: the input at position p
is the projected audio of frame p plus the embedding of the token written at p. Its text stream is
aligned to the audio: [STREAMING_PAD] while no word is due, each word's tokens (marked by
[STREAMING_WORD]) a fixed delay after the word is spoken (Voxtral Realtime, arXiv 2602.11298 §3;
Delayed Streams Modeling, Kyutai 2025).

- voxtral_exp.realtime.model: the processor (offline tokenizer for random models) and the model
- voxtral_exp.realtime.words: word timings (manifest "words", CTM files) and their checks
- voxtral_exp.realtime.stream: the training stream built from word timings; featuriser, collator
- voxtral_exp.realtime.serve: transcription through transformers' generation; WER; word times
- voxtral_exp.realtime.align: self-alignment (`python -m voxtral_exp.realtime.align`)
"""
