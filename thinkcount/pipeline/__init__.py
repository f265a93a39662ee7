"""The DVC stages' support: the typed params.yaml and the stage runner."""
