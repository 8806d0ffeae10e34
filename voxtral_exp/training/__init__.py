"""Fine-tuning a model on data: the recipe, the Trainer and what it uses (collator, loss, cache,
evaluation, tracking, several processes)."""
