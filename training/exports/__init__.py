"""Dataset exports: a frozen snapshot's pairs written as one zip archive for verl, Hugging Face ``datasets`` or
any tool (JSON Lines and image files).

The writers are plain file-writing code, free of Django: they get the rows, a function that reads an image's
bytes and the archive's metadata (:class:`training.exports.writers.ExportInput`), and stream the rows out.
"""
