"""Monitoring & health: derived per-connection health, incidents, alerts, the status page."""
