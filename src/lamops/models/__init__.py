"""The models the phases train and the agents run: the factory (`factory.py`: a tiny Mistral from a spec, or a
pretrained causal LM loaded offline, and publishing) and the pipeline's own BPE tokenizer (`tokenizer.py`).

Below the agents and the trainers, so the LAM agent loads a model without importing a trainer."""
