"""The models the phases train and the agents run: the factory (`factory.py`: a tiny Mistral from a spec, or a
pretrained causal LM loaded offline, and publishing), the pipeline's own BPE tokenizer (`tokenizer.py`), and
the arithmetic of a Mistral's size, FLOPs and ZeRO memory before it is built (`sizing.py`).

Below the agents and the trainers, so the LAM agent loads a model without importing a trainer."""
