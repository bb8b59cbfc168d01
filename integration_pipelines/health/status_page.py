"""The customer-facing status page: each tenant sees the health of its own integrations.

Routes (see `build_status_router`):

- `GET /status/{tenant}` - an HTML page of the tenant's connections, for the holder of the
  tenant's status token (`?token=` or `Authorization: Bearer`); `GET /status/{tenant}.json` is
  the same data as JSON.
- `GET /status` - the internal overview of every tenant's connections, for Customer Success,
  with the admin token (`INTEGRATION_STATUS_ADMIN_TOKEN`).

No token: 401. A token that is not the tenant's (another tenant's, a revoked one, garbage): 404,
the same answer as for a tenant that does not exist, so the page never tells whether a tenant
exists. Neither carries any data. Tokens never appear in pages, error bodies or logs, and
every response is `Cache-Control: no-store`, `X-Robots-Tag: noindex`, `Referrer-Policy:
no-referrer` (a token in the query string must not leak to another site).

Only customer-safe fields are shown: the connector's title, the status, the last successful
sync, the 24 h error rate, an open incident's plain-language reason (the first line of it;
never the raw error, a stack trace or a run id) and the 7-day history. The page is one HTML
document with inline CSS, no scripts and no external assets.
"""

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from integration_pipelines.canonical.tables import tenants
from integration_pipelines.health.model import ConnectionHealth, DayHealth
from integration_pipelines.health.tokens import is_admin_token, tenant_for_token

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
}
HISTORY_DAYS = 7
REASON_MAX = 240

STATUS_TEXT: dict[str, str] = {
    "healthy": "Operational",
    "degraded": "Degraded",
    "down": "Outage",
    "paused": "Paused",
    "no_runs": "No syncs",
}
STATUS_GLYPH: dict[str, str] = {"healthy": "✓", "degraded": "!", "down": "✕", "paused": "‖", "no_runs": "–"}

_TRACE_MARKERS = re.compile(r"Traceback \(most recent call last\)|^\s*File \"|\bat [\w.$]+\(", re.MULTILINE)
_URL = re.compile(r"\bhttps?://([^/\s?#'\"]+)[^\s'\"]*")
_PATH = re.compile(r"(?<![\w.])(?:/[\w.-]+){2,}/?")
MAX_REASONS = 4


# ---------------------------------------------------------------- the data shown


@dataclass(frozen=True)
class Overall:
    """The banner at the top of a page."""

    status: str  # operational | degraded | outage | none
    text: str


def overall_of(items: list[ConnectionHealth]) -> Overall:
    """The banner for a set of connections: the worst status wins; paused counts as operational."""
    if not items:
        return Overall("none", "No integrations connected yet")
    statuses = {h.status for h in items}
    if "down" in statuses:
        return Overall("outage", "Outage")
    if "degraded" in statuses:
        return Overall("degraded", "Some integrations degraded")
    return Overall("operational", "All integrations operational")


def plain_reason(text: str | None) -> str | None:
    """One reason fit for a customer: its first line, without a stack trace, URLs cut to their
    host, file paths dropped, and not too long."""
    if not text:
        return None
    match = _TRACE_MARKERS.search(text)
    if match:
        text = text[: match.start()]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = _URL.sub(lambda m: m.group(1), first)
    first = _PATH.sub("", first).strip(" :;,")
    if not first:
        return "A sync did not complete"
    return first if len(first) <= REASON_MAX else first[: REASON_MAX - 1].rstrip() + "…"


def plain_reasons(reasons: list[str] | str | None) -> list[str]:
    """Reasons fit for a customer; an incident's reason joins several with `; `."""
    if not reasons:
        return []
    parts = reasons.split("; ") if isinstance(reasons, str) else [p for r in reasons for p in r.split("; ")]
    out: list[str] = []
    for part in parts:
        plain = plain_reason(part)
        if plain and plain not in out:
            out.append(plain)
    return out[:MAX_REASONS]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    moment = _utc(moment)
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def exact_utc(moment: datetime) -> str:
    """`4 Dec 2026, 21:05 UTC`."""
    moment = _utc(moment) or moment
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def relative(moment: datetime, now: datetime) -> str:
    """`just now`, `5 minutes ago`, `3 hours ago`, `2 days ago`."""
    seconds = max(0, int(((_utc(now) or now) - (_utc(moment) or moment)).total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def error_rate_text(rate: float | None) -> str:
    """`No syncs`, `0%`, `0.4%`, `12%`."""
    if rate is None:
        return "No syncs"
    percent = rate * 100
    if percent == 0 or percent >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def history_days(items: list[DayHealth], now: datetime) -> list[DayHealth]:
    """The last 7 UTC days, oldest first; days the derivation did not report have no runs."""
    today = (_utc(now) or now).date()
    by_day = {d.day: d for d in items}
    days = [(today - timedelta(days=offset)).isoformat() for offset in range(HISTORY_DAYS - 1, -1, -1)]
    return [by_day.get(day) or DayHealth(day=day, runs=0, failed=0, status="no_runs") for day in days]


def public_connection(h: ConnectionHealth, now: datetime) -> dict[str, Any]:
    """The customer-safe view of one connection (the JSON variant, and what the HTML shows)."""
    incident = None
    if h.incident is not None:
        incident = {
            "severity": h.incident.severity,
            "since": _iso(h.incident.opened_at),
            "reasons": plain_reasons(h.incident.reason),
        }
    return {
        "connection_id": h.connection_id,
        "partner": h.connector_title,
        "connector": h.connector,
        "status": h.status,
        "status_text": STATUS_TEXT[h.status],
        "reasons": plain_reasons(h.reasons),
        "last_success_at": _iso(h.last_success_at),
        "error_rate_24h": h.error_rate_24h,
        "incident": incident,
        "history": [
            {"day": d.day, "status": d.status, "runs": d.runs, "failed": d.failed}
            for d in history_days(h.history, now)
        ],
    }


# ---------------------------------------------------------------- HTML

_CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f4f6f8;color:#1c2430;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"Noto Sans",sans-serif}
.wrap{max-width:880px;margin:0 auto;padding-left:16px;padding-right:16px}
.wrap.wide{max-width:1240px}
header.top{background:#fff;border-bottom:1px solid #dde2e8}
header.top .wrap{padding-top:20px;padding-bottom:18px}
.eyebrow{margin:0;color:#526070;font-size:.8rem;font-weight:600;letter-spacing:.06em;text-transform:uppercase}
h1{margin:2px 0 0;font-size:1.5rem;line-height:1.25}
main{padding-top:20px;padding-bottom:8px}
.banner{display:flex;gap:14px;align-items:center;padding:16px 18px;border-radius:10px;color:#fff;
margin-bottom:20px}
.banner .icon{flex:none;width:34px;height:34px;border-radius:50%;background:rgba(255,255,255,.22);
display:flex;align-items:center;justify-content:center;font-weight:700;font-size:1.1rem}
.banner strong{display:block;font-size:1.15rem;line-height:1.3}
.banner p{margin:0;opacity:.92;font-size:.9rem}
.banner-operational{background:#17663a}.banner-degraded{background:#8a4b00}.banner-outage{background:#a3231b}
.banner-none{background:#44505e}
.cards{list-style:none;margin:0;padding:0;display:grid;gap:16px}
.card{background:#fff;border:1px solid #dde2e8;border-radius:10px;padding:18px}
.card-head{display:flex;gap:12px;justify-content:space-between;align-items:flex-start}
.card h2{margin:0;font-size:1.1rem;line-height:1.3}
.muted{color:#5b6776;font-size:.85rem;margin:2px 0 0;word-break:break-all}
.pill{flex:none;display:inline-flex;gap:6px;align-items:center;padding:3px 10px;border-radius:999px;
font-size:.85rem;font-weight:600;border:1px solid;white-space:nowrap}
.pill-healthy{color:#135c33;background:#e3f4e9;border-color:#a7d8b8}
.pill-degraded{color:#7a4100;background:#fff1d6;border-color:#f2c97a}
.pill-down{color:#9b1c14;background:#fde7e5;border-color:#f0aca6}
.pill-paused{color:#3d4854;background:#eceff3;border-color:#c5ccd5}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px 24px;margin:16px 0 0}
.facts dt{color:#5b6776;font-size:.8rem;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:2px 0 0;font-weight:500}
.facts .exact{display:block;color:#5b6776;font-size:.8rem;font-weight:400}
.incident{margin:16px 0 0;padding:12px 14px;border-radius:8px;border-left:4px solid}
.incident-degraded{background:#fff8e8;border-color:#d98e04}
.incident-down{background:#fdf0ef;border-color:#c8322a}
.incident h3{margin:0;font-size:.95rem}
.incident p{margin:4px 0 0;font-size:.92rem}
.incident ul{margin:4px 0 0;padding-left:20px;font-size:.92rem}
.incident .since{color:#4d5866;font-size:.82rem}
.history{margin:18px 0 0}
.history h3{margin:0 0 8px;font-size:.8rem;color:#5b6776;font-weight:600;text-transform:uppercase;
letter-spacing:.04em}
.history ol{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(7,minmax(0,1fr));
gap:6px}
.history li{text-align:center;font-size:.75rem;color:#4d5866}
.block{display:flex;align-items:center;justify-content:center;height:30px;border-radius:5px;font-weight:700;
font-size:.8rem;margin-bottom:3px}
.b-healthy{background:#1e8449;color:#fff}.b-degraded{background:#f0b429;color:#3d2800}
.b-down{background:#c8322a;color:#fff}.b-paused{background:#8d99a6;color:#fff}
.b-no_runs{background:#e3e7ec;color:#59636f}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:18px 0 0;padding:0;list-style:none;font-size:.8rem;
color:#4d5866}
.legend span.block{display:inline-flex;width:18px;height:18px;margin:0 6px 0 0;vertical-align:middle;
font-size:.65rem}
.empty{background:#fff;border:1px dashed #c5ccd5;border-radius:10px;padding:24px;text-align:center;
color:#4d5866}
footer{padding-top:16px;padding-bottom:32px;color:#5b6776;font-size:.8rem}
.table-wrap .muted{word-break:normal;white-space:nowrap}
.sev{font-weight:600}
.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);
white-space:nowrap;border:0}
.table-wrap{overflow-x:auto;background:#fff;border:1px solid #dde2e8;border-radius:10px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:9px 12px;border-bottom:1px solid #e8ecf0;vertical-align:top}
th{background:#f8f9fb;color:#4d5866;font-size:.78rem;text-transform:uppercase;letter-spacing:.04em}
tr:last-child td{border-bottom:0}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 16px;padding:0;list-style:none}
@media (max-width:480px){h1{font-size:1.3rem}.card{padding:14px}.card-head{flex-direction:column;gap:8px}
.banner{padding:14px}}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _time(moment: datetime, now: datetime) -> str:
    exact = exact_utc(moment)
    return (
        f'<time datetime="{_iso(moment)}" title="{exact}">{escape(relative(moment, now))}</time>'
        f'<span class="exact">{exact}</span>'
    )


def _pill(status: str) -> str:
    return (
        f'<span class="pill pill-{status}"><span aria-hidden="true">{STATUS_GLYPH[status]}</span>'
        f"{STATUS_TEXT[status]}</span>"
    )


def _history(days: list[DayHealth]) -> str:
    items = []
    for d in days:
        day = date.fromisoformat(d.day)
        if d.runs:
            runs = f"{d.runs} sync{'s' if d.runs != 1 else ''}, {d.failed} failed"
        else:
            runs = "no syncs"
        spoken = f"{day:%A} {day.day} {day:%B}: {STATUS_TEXT[d.status].lower()}, {runs}"
        items.append(
            f'<li title="{escape(spoken)}"><span class="block b-{d.status}" aria-hidden="true">'
            f'{STATUS_GLYPH[d.status]}</span><span aria-hidden="true">{day:%a}<br>{day.day}</span>'
            f'<span class="sr-only">{escape(spoken)}</span></li>'
        )
    return (
        '<div class="history"><h3>Last 7 days</h3>'
        f'<ol aria-label="Daily status, last 7 days, oldest first">{"".join(items)}</ol></div>'
    )


def _card(h: ConnectionHealth, now: datetime) -> str:
    data = public_connection(h, now)
    if h.last_success_at is not None:
        last = _time(h.last_success_at, now)
    else:
        last = "Never"
    incident = ""
    if h.incident is not None:
        severity = h.incident.severity
        reasons = data["incident"]["reasons"] or ["A sync did not complete"]
        incident = (
            f'<div class="incident incident-{severity}"><h3>Open incident: {STATUS_TEXT[severity].lower()}'
            f"</h3>{_reason_list(reasons)}"
            f'<p class="since">Since {_time_inline(h.incident.opened_at, now)}</p></div>'
        )
    elif data["reasons"] and h.status in ("degraded", "down"):
        reasons_html = _reason_list(data["reasons"])
        incident = f'<div class="incident incident-{h.status}"><h3>What we see</h3>{reasons_html}</div>'
    return (
        f'<li class="card" id="conn-{escape(h.connector)}" data-connection="{escape(h.connection_id)}">'
        f'<div class="card-head"><div><h2>{escape(h.connector_title)}</h2>'
        f'<p class="muted">{escape(h.connection_id)}</p></div>{_pill(h.status)}</div>'
        f'<dl class="facts"><div><dt>Last successful sync</dt><dd>{last}</dd></div>'
        f"<div><dt>Failed syncs, last 24 h</dt><dd>{error_rate_text(h.error_rate_24h)}</dd></div></dl>"
        f"{incident}{_history(history_days(h.history, now))}</li>"
    )


def _reason_list(reasons: list[str]) -> str:
    if len(reasons) == 1:
        return f"<p>{escape(reasons[0])}</p>"
    return "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in reasons) + "</ul>"


def _time_inline(moment: datetime, now: datetime) -> str:
    exact = exact_utc(moment)
    return f'<time datetime="{_iso(moment)}" title="{exact}">{exact}</time> ({escape(relative(moment, now))})'


def _summary(items: list[ConnectionHealth]) -> str:
    """`3 integrations: 1 operational, 1 degraded, 1 down. ` (empty without integrations)."""
    if not items:
        return ""
    words = {"healthy": "operational", "degraded": "degraded", "down": "down", "paused": "paused"}
    parts = [f"{n} {word}" for s, word in words.items() if (n := sum(1 for h in items if h.status == s))]
    noun = "integration" if len(items) == 1 else "integrations"
    return f"{len(items)} {noun}: {', '.join(parts)}. "


def _legend() -> str:
    entries = "".join(
        f'<li><span class="block b-{s}" aria-hidden="true">{STATUS_GLYPH[s]}</span>{STATUS_TEXT[s]}</li>'
        for s in ("healthy", "degraded", "down", "paused", "no_runs")
    )
    return f'<ul class="legend" aria-label="Legend">{entries}</ul>'


def render_tenant_page(tenant_name: str, items: list[ConnectionHealth], now: datetime) -> str:
    """The tenant's status page as one HTML document."""
    overall = overall_of(items)
    glyph = {"operational": "✓", "degraded": "!", "outage": "✕", "none": "–"}[overall.status]
    if items:
        cards = f'<ul class="cards">{"".join(_card(h, now) for h in items)}</ul>{_legend()}'
    else:
        cards = '<p class="empty">No integrations are connected for this account yet.</p>'
    body = (
        '<header class="top"><div class="wrap"><p class="eyebrow">Integration status</p>'
        f"<h1>{escape(tenant_name)}</h1></div></header>\n"
        f'<main class="wrap"><section class="banner banner-{overall.status}" role="status">'
        f'<span class="icon" aria-hidden="true">{glyph}</span><div><strong>{escape(overall.text)}</strong>'
        f"<p>{_summary(items)}</p><p>Updated "
        f'<time datetime="{_iso(now)}">{exact_utc(now)}</time></p></div></section>\n'
        f"{cards}</main>\n"
        '<footer class="wrap">Times are in UTC. Status is derived from each integration\'s recent syncs. '
        "Reload the page for the latest status.</footer>"
    )
    return _page(f"{tenant_name} - integration status", body)


def render_overview(items: list[ConnectionHealth], names: Mapping[str, str], now: datetime) -> str:
    """The internal overview: every connection of every tenant, worst first."""
    order = {"down": 0, "degraded": 1, "paused": 2, "healthy": 3}
    rows = []
    for h in sorted(items, key=lambda x: (order[x.status], x.tenant_id, x.connection_id)):
        last = _time_inline(h.last_success_at, now) if h.last_success_at else "Never"
        if h.incident is not None:
            incident = (
                f'<span class="sev">{escape(h.incident.severity.capitalize())}</span> since '
                f"{_time_inline(h.incident.opened_at, now)}: "
                f"{escape('; '.join(plain_reasons(h.incident.reason)))}"
            )
        else:
            incident = escape("; ".join(plain_reasons(h.reasons))) or "-"
        tenant_cell = (
            f'{escape(names.get(h.tenant_id, h.tenant_id))}<div class="muted">{escape(h.tenant_id)}</div>'
        )
        partner_cell = f'{escape(h.connector_title)}<div class="muted">{escape(h.connection_id)}</div>'
        rows.append(
            f"<tr><td>{tenant_cell}</td><td>{partner_cell}</td>"
            f"<td>{_pill(h.status)}</td><td>{last}</td><td>{error_rate_text(h.error_rate_24h)}</td>"
            f"<td>{incident}</td></tr>"
        )
    counts = {s: sum(1 for h in items if h.status == s) for s in ("healthy", "degraded", "down", "paused")}
    summary = "".join(f"<li>{_pill(s)} {n}</li>" for s, n in counts.items())
    overall = overall_of(items)
    table = (
        '<div class="table-wrap"><table><thead><tr><th scope="col">Tenant</th><th scope="col">Partner</th>'
        '<th scope="col">Status</th><th scope="col">Last successful sync</th><th scope="col">Failed 24 h</th>'
        f'<th scope="col">Incident / reason</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        if rows
        else '<p class="empty">No connections yet.</p>'
    )
    body = (
        '<header class="top"><div class="wrap wide"><p class="eyebrow">Internal - Customer Success</p>'
        "<h1>Integration status, all tenants</h1></div></header>\n"
        f'<main class="wrap wide"><section class="banner banner-{overall.status}" role="status"><div>'
        f"<strong>{escape(overall.text)}</strong><p>{_summary(items)}{len(names)} tenants. "
        f'Updated <time datetime="{_iso(now)}">{exact_utc(now)}</time></p></div></section>'
        f'<ul class="counts" aria-label="Connections by status">{summary}</ul>{table}</main>\n'
        '<footer class="wrap wide">Times are in UTC.</footer>'
    )
    return _page("Integration status - all tenants", body)


# ---------------------------------------------------------------- routes


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


def _error(status: int, message: str) -> JSONResponse:
    headers = dict(SECURITY_HEADERS)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="status"'
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class RedactQueryValues(logging.Filter):
    """Drops query-string values from uvicorn's access log lines (`GET /status/acme?token=***`).

    A status page link carries its tenant's token in the query string (and a `token` webhook
    scheme may carry its shared secret there): with an access log on (`serve --access-log`)
    they would otherwise be written to the log in plain text. Parameter names are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            path, _, query = args[2].partition("?")
            parts = [part.partition("=") for part in query.split("&")]
            query = "&".join(f"{name}=***" if sep else name for name, sep, _ in parts)
            record.args = (*args[:2], f"{path}?{query}", *args[3:])
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install `RedactQueryValues` on uvicorn's access logger (once per process)."""
    access = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQueryValues) for f in access.filters):
        access.addFilter(RedactQueryValues())


def build_status_router(
    *,
    engine_provider: Callable[[], sa.Engine],
    connectors: Mapping[str, Any] | None = None,
) -> APIRouter:
    """The status page's routes, to include in the receiver app (or any FastAPI app).

    `engine_provider` returns the (migrated) integration database's engine, called per request;
    `connectors` (name to `LoadedConnector`) is passed to `derive_health` (default: the registry).
    The handlers are plain functions, so FastAPI runs them, and their database work, in its
    thread pool.
    """
    redact_access_log()  # every process serving these routes: tokens in links stay out of logs
    router = APIRouter(include_in_schema=False)
    loaded: dict[str, Mapping[str, Any]] = {}

    def connector_specs() -> Mapping[str, Any]:
        if connectors is not None:
            return connectors
        if "all" not in loaded:  # the registry's files, read once per router
            from integration_pipelines.connectors.registry import load_connectors

            loaded["all"] = load_connectors()
        return loaded["all"]

    def derive(engine: sa.Engine, now: datetime, tenant_id: str | None) -> list[ConnectionHealth]:
        # Imported here: the derivation is a separate part of the health layer, and the
        # router (tokens, 401/404) works without importing it.
        from integration_pipelines.health.derive import derive_health

        items = derive_health(engine, now=now, tenant_id=tenant_id, connectors=connector_specs())
        if tenant_id is not None:  # belt and braces: never another tenant's connection
            items = [h for h in items if h.tenant_id == tenant_id]
        return sorted(items, key=lambda h: (h.connector_title.lower(), h.connection_id))

    def authorised_tenant(request: Request, tenant: str) -> tuple[sa.Engine, Response | None]:
        engine = engine_provider()
        token = _token(request)
        if token is None:
            return engine, _error(401, "status token required")
        owner = tenant_for_token(engine, token)
        if owner is None or not hmac.compare_digest(owner.encode(), tenant.encode()):
            return engine, _error(404, "not found")
        return engine, None

    @router.get("/status")
    def status_overview(request: Request) -> Response:
        """Every tenant's connections, for Customer Success (admin token only)."""
        if not is_admin_token(_token(request)):
            return _error(401, "admin token required")
        engine = engine_provider()
        now = datetime.now(UTC)
        items = derive(engine, now, None)
        with engine.connect() as conn:
            names = {r.id: r.name for r in conn.execute(sa.select(tenants.c.id, tenants.c.name))}
        return HTMLResponse(render_overview(items, names, now), headers=SECURITY_HEADERS)

    @router.get("/status/{tenant}.json")
    def tenant_status_json(tenant: str, request: Request) -> Response:
        """The tenant's status as JSON (same data as the page)."""
        engine, refused = authorised_tenant(request, tenant)
        if refused is not None:
            return refused
        now = datetime.now(UTC)
        items = derive(engine, now, tenant)
        overall = overall_of(items)
        body = {
            "tenant": tenant,
            "generated_at": _iso(now),
            "overall": {"status": overall.status, "text": overall.text},
            "connections": [public_connection(h, now) for h in items],
        }
        return JSONResponse(body, headers=SECURITY_HEADERS)

    @router.get("/status/{tenant}")
    def tenant_status_page(tenant: str, request: Request) -> Response:
        """The tenant's status page (HTML)."""
        engine, refused = authorised_tenant(request, tenant)
        if refused is not None:
            return refused
        now = datetime.now(UTC)
        items = derive(engine, now, tenant)
        with engine.connect() as conn:
            name = conn.execute(sa.select(tenants.c.name).where(tenants.c.id == tenant)).scalar_one_or_none()
        return HTMLResponse(render_tenant_page(name or tenant, items, now), headers=SECURITY_HEADERS)

    return router
