"""The dataset: pairs built from reviewed work (snapshots, the API and exports build on them)."""
