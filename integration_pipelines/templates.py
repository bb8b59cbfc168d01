"""`{config.region}`-style placeholders in connector files, filled from named namespaces.

Uses Python's own format machinery (format specs work: `{document.updated_at:%Y-%m-%d}`),
with dotted access into dicts. A missing name raises TemplateError naming the
placeholder, never a value.
"""

import string
from collections.abc import Mapping
from typing import Any


class TemplateError(KeyError):
    """A placeholder that names something the namespaces do not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Namespace:
    """Attribute access into a mapping, so `{document.id}` reads `document["id"]`."""

    def __init__(self, path: str, data: Mapping[str, Any]):
        self._path = path
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._data:
            raise TemplateError(f"placeholder {{{self._path}.{name}}} has no value")
        return _wrap(f"{self._path}.{name}", self._data[name])

    def __format__(self, spec: str) -> str:
        # never print a whole namespace: `{credentials}` would put every secret in a string
        raise TemplateError(f"placeholder {{{self._path}}} names a group of values, not one value")

    def __repr__(self) -> str:
        return f"<{self._path}>"


def _wrap(path: str, value: Any) -> Any:
    return _Namespace(path, value) if isinstance(value, Mapping) else value


class _Formatter(string.Formatter):
    def get_value(self, key: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if key not in kwargs:
            raise TemplateError(f"placeholder {{{key}}} is unknown; available: {', '.join(sorted(kwargs))}")
        return kwargs[key]


_FORMATTER = _Formatter()


def render(template: str, namespaces: Mapping[str, Mapping[str, Any]]) -> str:
    """Fill `{ns.key}` placeholders; `{{` and `}}` are literal braces."""
    if "{" not in template:
        return template
    wrapped = {name: _wrap(name, data) for name, data in namespaces.items()}
    return _FORMATTER.vformat(template, (), wrapped)


def render_value(value: Any, namespaces: Mapping[str, Mapping[str, Any]]) -> Any:
    """Render every string inside a nested JSON-like value (request bodies, params)."""
    if isinstance(value, str):
        return render(value, namespaces)
    if isinstance(value, Mapping):
        return {k: render_value(v, namespaces) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, namespaces) for v in value]
    return value


def placeholders(template: str) -> list[str]:
    """The dotted names a template refers to."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]
