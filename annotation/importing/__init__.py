"""Catalog import: reading manifests, checking and normalizing image files, and the import report."""
