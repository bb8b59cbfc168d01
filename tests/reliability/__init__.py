"""The reliability and security suite (issue 6), run by `scripts/test.sh` in CI.

Where each promise is checked:

* fault injection through the sandbox, every inbound stream of every connector: 429 storms,
  5xx bursts and downtime, timeouts, expired and revoked tokens, truncated pages, schema drift,
  repeated pages -> `test_faults.py` (no lost or doubled records, a clear status, rerun recovers);
* a sync killed with SIGKILL mid-stream, then rerun -> the connector contract,
  `tests/contract/test_connector_contract.py::test_kill_mid_stream_then_resume_loses_and_doubles_nothing`
  (every stream, SQLite and PostgreSQL);
* the outbox delivery process killed mid-send, then rerun -> `tests/outbox/test_downtime.py`;
* PostgreSQL stopped and started mid-run (a private cluster) -> `test_database_restart.py`;
* the webhook receiver fuzzed from its OpenAPI, 5,000 cases -> `test_security_fuzz.py`;
* secrets scanned after `demo --faults` in logs, event logs, run configs, errors, files and the
  database -> `test_security_secrets.py`;
* tenant isolation of every tenant-scoped route and CLI command -> `test_security_tenants.py`;
* the SSRF guard (allowed hosts, resolved addresses, loopback in sandbox mode only) ->
  `test_security_ssrf.py` and `tests/framework/test_ssrf_guard.py`.
"""
