"""taskvec - few-shot personalized aesthetics by task-vector customization (Yun & Choo, ECCV 2024).

Importing the package is free of side effects (no torch, no model); submodules load what they need.
"""

__version__ = "0.1.0"
