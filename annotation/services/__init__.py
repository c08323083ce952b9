"""Writes to the catalog. Each module owns one kind of change; import what you need from it directly."""
