"""A code location with the Celery executor as every job's default (`scale.celery`).

Point a workspace (or `dagster dev -m`) at this module instead of `integration_pipelines.definitions`
where runs should go to Celery workers; the broker comes from `INTEGRATION_CELERY_BROKER_URL`.
"""

from integration_pipelines.scale.celery import celery_definitions

defs = celery_definitions()
