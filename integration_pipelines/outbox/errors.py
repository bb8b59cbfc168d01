"""Why an outbox item could not be sent."""


class OutboundError(Exception):
    """An outbox item that cannot be sent as it stands: retrying cannot fix it, so it is dead-lettered
    at once (an unmapped enum value, a record that no longer exists, a stream the connector dropped).

    Fix the data or the connector file, then `integration-pipelines outbox retry <id>`.
    """
