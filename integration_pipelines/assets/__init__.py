"""Dagster assets: partner streams, their syncs, and the ATS entities they write."""
