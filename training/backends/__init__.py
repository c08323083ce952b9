"""The training stage's machine-learning code, free of Django.

Heavy libraries (torch, transformers, tokenizers) are imported inside the functions that need them, so
importing these modules costs nothing to the web process.
"""
