"""Training: the tokenizer, the model factory and the four training phases."""
