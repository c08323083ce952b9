"""Procedural, deterministic product-photo catalogs for demos, tests and benchmarks (see ``generator``)."""
