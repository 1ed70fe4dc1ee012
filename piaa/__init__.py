"""piaa - shared core of the PIAA project: safe image decoding, the model resolver, the ratings schema.

Both products build on it and never on each other: ``pmllm`` (zero-shot, profile-aware MLLM scorer) and
``taskvec`` (few-shot task-vector customization). Importing this package loads no model and no torch.
"""

__version__ = "0.1.0"
