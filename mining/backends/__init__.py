"""The mining stage's machine-learning code, free of Django: embedders (open_clip and a weightless colour and
layout descriptor), nearest-neighbour search (exact blocked products and FAISS) and DreamBooth.

Heavy libraries (torch, open_clip, faiss, diffusers, peft, transformers) are imported inside the functions
that need them, so importing these modules costs nothing to the web process.
"""
