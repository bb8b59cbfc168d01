"""The inbox sensor: one run per connection with new events, a retry for events left pending."""

from integration_pipelines.sensors.inbox_sensor import RETRY_SECONDS, plan_runs


def test_new_events_get_one_run_per_connection() -> None:
    requests, cursor = plan_runs({"a/beeline": 7, "b/beeline": 3}, {}, {"a/beeline", "b/beeline"}, now=1000.0)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("a/beeline", "inbox:a/beeline:7:0"),
        ("b/beeline", "inbox:b/beeline:3:0"),
    ]
    assert cursor == {"a/beeline": [7, 1000.0, 0], "b/beeline": [3, 1000.0, 0]}


def test_nothing_new_waits_then_retries_what_is_still_pending() -> None:
    cursor = {"a/beeline": [7, 1000.0, 0]}
    requests, same = plan_runs({"a/beeline": 7}, cursor, {"a/beeline"}, now=1000.0 + 5)
    assert requests == [] and same == cursor
    requests, later = plan_runs({"a/beeline": 7}, cursor, {"a/beeline"}, now=1000.0 + RETRY_SECONDS + 1)
    assert [r.run_key for r in requests] == ["inbox:a/beeline:7:1"]  # a new key: Dagster runs it again
    assert later["a/beeline"][2] == 1


def test_connections_without_a_partition_wait_and_applied_ones_drop_out() -> None:
    requests, cursor = plan_runs({"new/beeline": 2}, {"old/beeline": [5, 1.0, 0]}, set(), now=10.0)
    assert requests == [] and cursor == {}
