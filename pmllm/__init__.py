"""pmllm - zero-shot personalized aesthetics: a frozen causal LLM + a frozen vision encoder joined by small
trainable profile-aware selective fusion modules. The user's text profile is the only personal signal.

Importing the package is free of side effects (no torch, no model); submodules load what they need.
"""

__version__ = "0.1.0"
