"""Connectors: one folder per partner with its `connector.yaml` (and, rarely, `hooks.py`)."""
