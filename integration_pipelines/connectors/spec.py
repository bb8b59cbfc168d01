"""The connector file format: what a `connector.yaml` may say, validated on load.

A connector file reads like the partner's API documentation: where the API lives, how
it authenticates, how it pages, and for each stream which endpoint returns which
records and how their fields map onto the ATS's canonical entities.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CANONICAL_ENTITIES = (
    "candidate",
    "candidate_document",
    "parsed_resume",
    "job",
    "submission",
    "placement",
)


class Strict(BaseModel):
    """Base for every block: unknown keys are errors, so typos are caught on load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- config of a connection


class ConfigField(Strict):
    """One value a connection supplies (site id, region...), used in `{config.<name>}`."""

    description: str = ""
    required: bool = True
    default: str | None = None
    choices: list[str] | None = None


# ---------------------------------------------------------------- layer 1: auth


class ApiKeyAuth(Strict):
    """Static keys sent with every call, in headers, the query string or the JSON body."""

    kind: Literal["api_key"]
    location: Literal["header", "query", "body"] = "header"
    # where the key goes (header/query/body field name) -> credential name in the vault
    keys: dict[str, str]


class BasicAuth(Strict):
    kind: Literal["basic"]
    username: str = "username"  # credential names
    password: str = "password"


class OAuth2ClientCredentials(Strict):
    """OAuth 2.0 client-credentials grant; the token is cached and renewed before expiry."""

    kind: Literal["oauth2_client_credentials"]
    token_url: str  # relative to base_url or absolute
    client_auth: Literal["basic", "body"] = "basic"
    client_id: str = "client_id"  # credential names
    client_secret: str = "client_secret"
    scope: str | None = None
    token_params: dict[str, str] = Field(default_factory=dict)  # extra form fields
    token_headers: dict[str, str] = Field(default_factory=dict)  # templates over credentials
    expiry_margin_seconds: int = 60


class OAuth2RefreshToken(Strict):
    """OAuth 2.0 refresh-token grant; a rotated refresh token is written back to the vault."""

    kind: Literal["oauth2_refresh_token"]
    token_url: str
    client_auth: Literal["basic", "body"] = "body"
    client_id: str = "client_id"
    client_secret: str = "client_secret"
    refresh_token: str = "refresh_token"
    scope: str | None = None
    expiry_margin_seconds: int = 60


class HmacSignatureAuth(Strict):
    """Each request signed with HMAC over method, path, timestamp and body."""

    kind: Literal["hmac"]
    key_id: str = "key_id"  # credential names
    secret: str = "secret"
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"
    key_id_header: str = "X-Key-Id"
    encoding: Literal["hex", "base64"] = "hex"


class NoAuth(Strict):
    kind: Literal["none"]


AuthSpec = Annotated[
    ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | OAuth2RefreshToken | HmacSignatureAuth | NoAuth,
    Field(discriminator="kind"),
]


class RateLimit(Strict):
    """Client-side budget plus the partner's headers that say when to try again."""

    requests: int = Field(gt=0)
    per: Literal["second", "minute", "hour"] = "minute"
    burst: int = Field(default=1, gt=0)  # calls that may go back to back; 1 spaces them evenly
    retry_after_header: str | None = "Retry-After"  # seconds to wait
    reset_header: str | None = None  # seconds until the window resets
    remaining_header: str | None = None


class RetryPolicy(Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    initial_backoff_seconds: float = Field(default=0.5, ge=0)
    max_backoff_seconds: float = Field(default=30, ge=0)
    timeout_seconds: float = Field(default=30, gt=0)
    # circuit breaker: after this many failed calls in a row, stop calling for reset_seconds
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30, gt=0)


# ---------------------------------------------------------------- pagination


class OffsetPagination(Strict):
    kind: Literal["offset"]
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_size: int = Field(default=100, gt=0)


class PageNumberPagination(Strict):
    kind: Literal["page_number"]
    page_param: str = "page"
    size_param: str | None = "page_size"
    page_size: int = Field(default=100, gt=0)
    first_page: int = 1
    total_pages_path: str | None = None  # stop early when the body says how many pages


class CursorPagination(Strict):
    kind: Literal["cursor"]
    cursor_param: str = "cursor"
    cursor_path: str  # where the next cursor is in the body
    size_param: str | None = None
    page_size: int = Field(default=100, gt=0)


class NextLinkPagination(Strict):
    kind: Literal["next_link"]
    next_path: str  # where the next page's URL is in the body


class LinkHeaderPagination(Strict):
    kind: Literal["link_header"]
    rel: str = "next"


class NoPagination(Strict):
    kind: Literal["none"]


PaginationSpec = Annotated[
    OffsetPagination
    | PageNumberPagination
    | CursorPagination
    | NextLinkPagination
    | LinkHeaderPagination
    | NoPagination,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- layer 2: mapping


class FieldMapping(Strict):
    """How one canonical field is computed from a partner record.

    Exactly one source: `path` (dotted, list items by index: `Telephones.0.Raw`),
    `concat` (paths and literal strings), `value` (a constant) or `hook` (a named
    transform in the connector's hooks.py). A `*` segment plucks from every element of a
    list (`Skills.Raw.*.Name` gives the list of skill names); `items` turns a list of
    partner objects into a list of small dicts (`{title: JobTitle.Raw, ...}`).

    In `concat`, an item written like a path is a path; an item with spaces or punctuation
    (`", "`) or in single quotes (`"'USA'"`) is a literal. A missing value drops the
    literal before it: `[location.city, ", ", location.region]` gives "Austin, TX" or "Austin".

    Then, in order: `map` (enum values),
    `type` coercion (with `format` and `timezone` for dates), `lookup` through
    record links, and `default` for what is still empty.
    """

    path: str | None = None
    concat: list[str] | None = None
    separator: str = ""
    value: Any = None
    hook: str | None = None
    map: dict[str, Any] | None = None
    type: Literal["string", "integer", "number", "decimal", "boolean", "date", "datetime", "list"] | None = (
        None
    )
    format: str | None = None
    timezone: str | None = None
    items: dict[str, str] | None = None  # for list values: output key -> path inside each element
    lookup: str | None = None  # canonical entity whose external id the value is
    lookup_missing: Literal["reject", "null"] = "reject"  # an id not synced yet: reject the row, or null
    default: Any = None

    @model_validator(mode="after")
    def one_source(self) -> "FieldMapping":
        sources = [s for s in ("path", "concat", "value", "hook") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError(
                f"give exactly one of path, concat, value or hook (got {', '.join(sources) or 'none'})"
            )
        return self


def _expand_mapping(value: Any) -> Any:
    """`title: position.title` is shorthand for `title: {path: position.title}`."""
    if isinstance(value, dict):
        return {k: ({"path": v} if isinstance(v, str) else v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- streams


class Request(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH"] = "GET"
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    form: dict[str, str] | None = None


class Incremental(Strict):
    """Fetch only what changed: the highest `cursor_field` seen is sent back as `param`."""

    cursor_field: str  # path in the raw record
    param: str  # request parameter that filters by it
    format: str = "iso8601"  # or a strftime pattern
    start: str | None = None  # first sync's lower bound; none = everything


class ForEach(Strict):
    """One request per ATS record that this stream has not processed yet (e.g. CV documents)."""

    entity: Literal["candidate_document"]
    alias: str = Field(alias="as")
    batch_size: int = Field(default=20, gt=0)


class ResponseFilter(Strict):
    """What a response means, checked before records are read (first match wins).

    `reject` quarantines the record (or the for-each item) with `message` and goes on;
    `fail` stops the sync with `message`; `retry` backs off and tries again;
    `ignore` treats the response as empty.
    """

    http_codes: list[int] | None = None
    body_has: str | None = None  # a path present in the JSON body
    action: Literal["reject", "fail", "retry", "ignore"]
    message: str | None = None  # template over the body, e.g. "{CSERROR.message}"


# ---------------------------------------------------------------- webhooks, outbound, conflicts


class Signature(Strict):
    """How a partner proves a webhook came from it (checked before anything is stored).

    * `hmac`: HMAC of the raw body in `header` (hex or base64, optional `prefix` like `sha256=`).
    * `timestamped_hmac`: HMAC of `signed_payload` (e.g. `"{timestamp}.{body}"`, or Slack's
      `"v0:{timestamp}:{body}"`) with the timestamp in `timestamp_header`; requests older than
      `tolerance_seconds` are refused (replay window).
    * `url_params_hmac`: HMAC of the full URL followed by the sorted form parameters, each
      key immediately followed by its value (Twilio's scheme), usually SHA1 and base64.
    * `token`: a shared verification token in `header` (or `query_param`), compared in constant time.
    * `basic`: HTTP Basic credentials configured with the partner (SAP Fieldglass pushes).
    * `none`: accepted unsigned (only for partners that sign nothing; say why in the file).
    """

    scheme: Literal["hmac", "timestamped_hmac", "url_params_hmac", "token", "basic", "none"]
    secret: str = "webhook_secret"  # credential name of the shared secret / token / password
    username: str | None = None  # credential name of the Basic user (scheme basic)
    header: str | None = None
    query_param: str | None = None
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_payload: str = "{timestamp}.{body}"
    tolerance_seconds: int = Field(default=300, gt=0)

    @model_validator(mode="after")
    def needs_where(self) -> "Signature":
        if self.scheme in ("hmac", "timestamped_hmac", "url_params_hmac") and not self.header:
            raise ValueError(f"scheme {self.scheme} needs the header that carries the signature")
        if self.scheme == "timestamped_hmac" and not self.timestamp_header:
            raise ValueError("scheme timestamped_hmac needs timestamp_header")
        if self.scheme == "token" and not (self.header or self.query_param):
            raise ValueError("scheme token needs header or query_param")
        if self.scheme == "basic" and not self.username:
            raise ValueError("scheme basic needs username (a credential name)")
        return self


class Handshake(Strict):
    """A subscription check the partner makes before sending events: echo its challenge."""

    method: Literal["GET", "POST"] = "GET"
    param: str  # e.g. hub.challenge, validationToken, crc_token
    location: Literal["query", "body"] = "query"
    respond: Literal["text", "json"] = "text"
    json_key: str | None = None  # respond {json_key: challenge} when respond is json


class WebhookRoute(Strict):
    """What an event type means: which inbound stream it feeds, and how to get the record.

    With `record`, the event carries the record; with `fetch`, it names it and we fetch it;
    with neither, the event is a wake-up call and the stream's incremental sync runs now
    ("webhook to wake, pull what changed").
    """

    stream: str
    record: str | None = None  # path to the record inside the event, when the event carries it
    fetch: Request | None = None  # else fetch it (templates see `event`, e.g. {event.jobPostingUid})


class Webhooks(Strict):
    """Events the partner pushes to `POST /webhooks/{connection_id}`."""

    signature: Signature
    handshake: Handshake | None = None
    format: Literal["json", "form", "xml"] = "json"
    event_id: str  # path in the event; with the connection it makes the event unique
    event_type: str  # path in the event; selects the route
    occurred_at: str | None = None  # path in the event; orders events of the same record
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    routes: dict[str, WebhookRoute]


# ---------------------------------------------------------------- outbound


class CsvLayout(Strict):
    """A file-style upload (e.g. Fieldglass connectors): header block, blank line, then a table."""

    header_block: dict[str, str] = Field(default_factory=dict)
    columns: list[str]


class OutboundStep(Strict):
    """A request made before the main one, e.g. create the worker a submission refers to.

    `link` names the canonical entity whose record link stores the id this step creates
    (`save.id`), so the step is skipped when the link already exists.
    """

    request: Request
    body: dict[str, FieldMapping]
    save: dict[str, str] = Field(default_factory=dict)  # name -> path in the response
    link: str | None = None
    link_key: str | None = None  # path in the outbound context of the linked record's internal id

    _expand = field_validator("body", mode="before")(_expand_mapping)


class Outbound(Strict):
    """How an ATS change is sent: create (no record link yet) or update (linked).

    Without `create`, the partner makes these records itself (e.g. a VMS creates placements)
    and only updates of linked records are sent. `update_body` defaults to `body`.
    """

    create: Request | None = None
    update: Request | None = None
    body: dict[str, FieldMapping] = Field(default_factory=dict)  # partner field (dots nest) -> value
    update_body: dict[str, FieldMapping] | None = None
    format: Literal["json", "form", "csv"] = "json"
    csv: CsvLayout | None = None
    response_id: str | None = None  # path in the create response: the partner's id for the record
    steps: dict[str, OutboundStep] = Field(default_factory=dict)
    context: dict[str, str] = Field(default_factory=dict)  # name -> canonical entity of a related record
    max_attempts: int = Field(default=8, ge=1)

    _expand = field_validator("body", "update_body", mode="before")(_expand_mapping)

    @model_validator(mode="after")
    def sends_something(self) -> "Outbound":
        if self.create is None and self.update is None:
            raise ValueError("outbound needs create, update or both")
        if self.create is not None and not self.body:
            raise ValueError("outbound create needs a body")
        if self.csv is not None and self.format != "csv" or self.format == "csv" and self.csv is None:
            raise ValueError("format: csv and a csv: layout go together")
        return self


class FieldPolicy(Strict):
    """Who wins when the ATS and the partner both changed a record since the last sync."""

    default: Literal["source_of_truth_partner", "source_of_truth_ats", "last_writer_wins"] = (
        "source_of_truth_partner"
    )
    fields: dict[str, Literal["source_of_truth_partner", "source_of_truth_ats", "last_writer_wins"]] = Field(
        default_factory=dict
    )


class Stream(Strict):
    """One flow of one entity. Inbound parts: request, records, primary_key, mapping.
    Outbound part: `outbound`. A bidirectional stream has both."""

    direction: Literal["inbound", "outbound", "bidirectional"]
    entity: str
    description: str = ""
    request: Request | None = None
    format: Literal["json", "xml"] = "json"
    records: str | None = None  # path to the list (or single object) of records; none = body
    primary_key: str | None = None
    incremental: Incremental | None = None
    for_each: ForEach | None = None
    pagination: PaginationSpec | None = None  # overrides the connector's
    response_filters: list[ResponseFilter] = Field(default_factory=list)
    mapping: dict[str, FieldMapping] = Field(default_factory=dict)
    outbound: Outbound | None = None

    _expand = field_validator("mapping", mode="before")(_expand_mapping)

    @model_validator(mode="after")
    def parts_for_direction(self) -> "Stream":
        if self.direction in ("inbound", "bidirectional"):
            missing = [n for n in ("request", "primary_key") if getattr(self, n) is None]
            if missing or not self.mapping:
                raise ValueError(
                    f"an {self.direction} stream needs request, primary_key and mapping "
                    f"(missing: {', '.join(missing + ([] if self.mapping else ['mapping']))})"
                )
        if self.direction in ("outbound", "bidirectional") and self.outbound is None:
            raise ValueError(f"an {self.direction} stream needs an outbound: block")
        return self

    @field_validator("entity")
    @classmethod
    def known_entity(cls, v: str) -> str:
        if v not in CANONICAL_ENTITIES:
            raise ValueError(
                f"unknown canonical entity {v!r}; expected one of {', '.join(CANONICAL_ENTITIES)}"
            )
        return v

    @field_validator("mapping")
    @classmethod
    def has_external_id(cls, v: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
        if v and "external_id" not in v:
            raise ValueError("mapping must produce external_id (the partner's id for the record)")
        return v


class Schedule(Strict):
    cron: str = "0 * * * *"
    timezone: str = "UTC"


class HealthThresholds(Strict):
    """When a connection counts as degraded or down (defaults suit most partners)."""

    freshness_minutes: int = Field(default=120, gt=0)  # last successful sync older than this: degraded
    degraded_error_rate: float = Field(default=0.2, ge=0, le=1)  # share of failed runs in the last hour
    down_after_failures: int = Field(default=3, ge=1)  # this many failed runs in a row: down
    max_reject_rate: float = Field(default=0.05, ge=0, le=1)  # rejected / records per run (asset check)
    backlog_warning: int = Field(default=500, ge=0)  # pending inbox or outbox items: degraded
    recovery_successes: int = Field(default=1, ge=1)  # successful runs in a row that close an incident
    flap_window_minutes: int = Field(default=30, ge=0)  # an incident reopened within this: no new alert


class Connector(Strict):
    """One partner integration, as declared in `connectors/<name>/connector.yaml`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    category: Literal[
        "cv_parsing", "vms", "job_distribution", "background_check", "communications", "payroll", "other"
    ]
    docs: str | None = None
    notes: str | None = None
    base_url: str
    allowed_hosts: list[str] = Field(default_factory=list)
    config: dict[str, ConfigField] = Field(default_factory=dict)
    auth: AuthSpec
    headers: dict[str, str] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    retry: RetryPolicy = RetryPolicy()
    pagination: PaginationSpec = NoPagination(kind="none")
    schedule: Schedule = Schedule()
    streams: dict[str, Stream]
    webhooks: Webhooks | None = None
    conflicts: dict[str, FieldPolicy] = Field(default_factory=dict)  # canonical entity -> policy
    health: HealthThresholds = HealthThresholds()

    def inbound_streams(self) -> dict[str, Stream]:
        return {n: s for n, s in self.streams.items() if s.direction in ("inbound", "bidirectional")}

    def outbound_streams(self) -> dict[str, Stream]:
        return {n: s for n, s in self.streams.items() if s.direction in ("outbound", "bidirectional")}

    @property
    def credential_names(self) -> list[str]:
        """The secrets a connection of this connector needs in the vault."""
        auth = self.auth
        if isinstance(auth, ApiKeyAuth):
            names = list(auth.keys.values())
        elif isinstance(auth, BasicAuth):
            names = [auth.username, auth.password]
        elif isinstance(auth, OAuth2ClientCredentials):
            names = [auth.client_id, auth.client_secret]
        elif isinstance(auth, OAuth2RefreshToken):
            names = [auth.client_id, auth.client_secret, auth.refresh_token]
        elif isinstance(auth, HmacSignatureAuth):
            names = [auth.key_id, auth.secret]
        else:
            names = []
        templated = " ".join([*self.headers.values(), *getattr(auth, "token_headers", {}).values()])
        for part in templated.split("{credentials.")[1:]:
            names.append(part.split("}")[0])
        return list(dict.fromkeys(names))

    @property
    def webhook_credential_names(self) -> list[str]:
        """The secrets the webhook receiver needs to verify this partner's events."""
        if self.webhooks is None or self.webhooks.signature.scheme == "none":
            return []
        signature = self.webhooks.signature
        return [n for n in (signature.username, signature.secret) if n]
