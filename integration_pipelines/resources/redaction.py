"""Keep secrets out of text that leaves the process: log lines, error reports, run metadata."""

import base64
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


def _forms(secret: str) -> set[str]:
    """The secret as it may appear on the wire: raw, base64 (padded or not), URL-encoded."""
    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.add(encoded)
        forms.add(encoded.rstrip("="))
    return {f for f in forms if f}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret (and its base64/URL-encoded forms) as ``***``.

    Longer forms are replaced first so that a secret contained in another secret cannot leave
    part of the longer one behind. A secret that only appears inside a bigger base64 blob (for
    example the password inside an ``Authorization: Basic`` header) is not found: pass the
    combined ``"user:password"`` as a secret too if such text can reach a log.
    """
    if not text:
        return text
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(str(secret))
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


class SecretRedactingFilter(logging.Filter):
    """A logging filter that masks the current secrets in a record's message, arguments and traceback.

    `secrets_provider` is called for every record, so secrets added after the filter was
    installed (a refreshed token, a newly loaded connection) are masked too. Attach it to the
    *handlers* that write logs out: a filter on a logger does not see records that propagate
    up from child loggers.
    """

    def __init__(self, secrets_provider: Callable[[], Iterable[str]], name: str = "") -> None:
        super().__init__(name)
        self._secrets_provider = secrets_provider

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets_provider() if s]
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: redact the pieces we have
            message = f"{record.msg} {record.args}"
        record.msg = redact(message, secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


__all__ = ["MASK", "SecretRedactingFilter", "redact"]
