"""The run directory: atomic writes, run.json, metrics files, model files."""
