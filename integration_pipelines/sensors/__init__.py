"""Sensors and schedules: keeping partitions in step with connections, polling partners."""
