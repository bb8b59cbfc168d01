"""Scale-out: running the project's jobs on Celery workers (see `scale.celery`)."""
