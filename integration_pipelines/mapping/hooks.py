"""Named transforms a connector defines in its `hooks.py`, for fields a declarative mapping cannot express.

A hook takes the flattened raw batch (one row per record, dotted columns, see `paths`) and returns a
Series aligned to it::

    from integration_pipelines.mapping import resolve_path, transform

    @transform                      # registered as "full_name"
    def full_name(raw):
        return resolve_path(raw, "name.first") + " " + resolve_path(raw, "name.last")

    @transform("phone")             # registered as "phone"
    def first_phone(raw): ...

Use `resolve_path` rather than `raw["a.b"]`: a column is absent when no record of the batch has it.
"""

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import pandas as pd

from integration_pipelines.mapping.errors import MappingConfigError

Hook = Callable[[pd.DataFrame], Any]
F = TypeVar("F", bound=Callable[..., Any])

TRANSFORM_ATTR = "__transform_name__"
_MODULE_PREFIX = "integration_pipelines._connector_hooks"


@overload
def transform(func: F, /) -> F: ...
@overload
def transform(name: str | None = None, /) -> Callable[[F], F]: ...
@overload
def transform(*, name: str | None = None) -> Callable[[F], F]: ...
def transform(arg: Any = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a mapping hook, registered under `name` or the function's name.

    Forms: `@transform`, `@transform()`, `@transform("n")`, `@transform(name="n")`.
    """
    if callable(arg):
        setattr(arg, TRANSFORM_ATTR, name or arg.__name__)
        return arg
    if arg is not None:
        if name is not None:
            raise TypeError("transform() takes the hook name once")
        name = arg
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError("transform() takes a non-empty hook name or decorates a function")

    def mark(func: F) -> F:
        setattr(func, TRANSFORM_ATTR, name or func.__name__)
        return func

    return mark


def transforms_in(namespace: dict[str, Any], origin: str = "hooks") -> dict[str, Hook]:
    """The public `@transform` functions of a module namespace, by hook name."""
    found: dict[str, Hook] = {}
    for attr, value in namespace.items():
        name = getattr(value, TRANSFORM_ATTR, None)
        if attr.startswith("_") or not callable(value) or not isinstance(name, str):
            continue
        if name in found and found[name] is not value:
            raise MappingConfigError(f"{origin}: two functions are registered as hook {name!r}")
        found[name] = value
    return found


def load_hooks(path: Path) -> dict[str, Hook]:
    """Import a connector's hooks file and return its `@transform` functions by name.

    `path` is the hooks file itself or the connector's directory; a directory without a
    `hooks.py` has no hooks (`{}`), a file path that does not exist is a `MappingConfigError`.
    Each file is imported under its own module name, so two connectors can both define `phone`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "hooks.py"
        if not path.exists():
            return {}
    if not path.is_file():
        raise MappingConfigError(f"hooks file {path} does not exist")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"{_MODULE_PREFIX}.{resolved.parent.name}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise MappingConfigError(f"cannot import hooks file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        exc.add_note(f"while importing hooks file {path}")
        raise
    return transforms_in(vars(module), origin=str(path))
