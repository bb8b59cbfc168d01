"""Finding, loading and validating connector files.

Every folder under `integration_pipelines/connectors/` holding a `connector.yaml` is a
connector (plus an optional `hooks.py`). Errors name the file, the line, the field and
what is wrong, so a typo is fixed in seconds rather than debugged at sync time.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from integration_pipelines.canonical.tables import ENTITY_TABLES
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.templates import placeholders

CONNECTORS_DIR = Path(__file__).parent
FRAMEWORK_COLUMNS = {"id", "tenant_id", "created_at", "updated_at"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a connector file."""

    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field or '<top>'}: {self.message}"


class ConnectorFileError(Exception):
    """A connector file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConnector:
    """A validated connector with where it came from and its hook transforms."""

    spec: Connector
    path: Path
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                match = next((k for k, v in node.value if k.value == key), None)
                return match.start_mark.line + 1 if match is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            continue  # pydantic adds union tags (e.g. 'oauth2_client_credentials') to locations
        line = node.start_mark.line + 1
    return line


def _semantic_problems(spec: Connector, path: Path, node: yaml.Node, hooks: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple[Any, ...], message: str) -> None:
        problems.append(Problem(path, _line_of(node, loc), ".".join(map(str, loc)), message))

    for name in placeholders(spec.base_url):
        root, _, key = name.partition(".")
        if root != "config" or key not in spec.config and key != "base_url":
            add(
                ("base_url",),
                f"placeholder {{{name}}} is not a declared config field (declare it under config:)",
            )
    if path.parent.name != spec.name:
        add(("name",), f"name {spec.name!r} must match its folder name {path.parent.name!r}")
    for stream_name, stream in spec.streams.items():
        columns = set(ENTITY_TABLES[stream.entity].columns.keys()) - FRAMEWORK_COLUMNS
        for target, mapping in stream.mapping.items():
            loc = ("streams", stream_name, "mapping", target)
            if target != "external_id" and target not in columns:
                add(loc, f"{stream.entity} has no field {target!r}; fields are: {', '.join(sorted(columns))}")
            if mapping.hook and mapping.hook not in hooks:
                known = ", ".join(sorted(hooks)) or "none (no hooks.py)"
                add(loc, f"hook {mapping.hook!r} is not defined in hooks.py; defined: {known}")
            if mapping.lookup and mapping.lookup not in ENTITY_TABLES:
                add(loc, f"lookup entity {mapping.lookup!r} is not a canonical entity")
        if stream.for_each is None and stream.direction != "outbound" and stream.request.method != "GET":
            pagination = stream.pagination or spec.pagination
            if pagination.kind != "none":
                add(("streams", stream_name, "pagination"), "only GET streams can be paginated")
    if spec.webhooks:
        inbound = spec.inbound_streams()
        for event_type, route in spec.webhooks.routes.items():
            if route.stream not in inbound:
                add(
                    ("webhooks", "routes", event_type, "stream"),
                    f"route to {route.stream!r}, which is not an inbound stream of {spec.name} "
                    f"(inbound: {', '.join(inbound) or 'none'})",
                )
    for entity in spec.conflicts:
        if entity not in ENTITY_TABLES:
            add(("conflicts", entity), f"{entity!r} is not a canonical entity")
        else:
            columns = set(ENTITY_TABLES[entity].columns.keys())
            for name in spec.conflicts[entity].fields:
                if name not in columns:
                    add(("conflicts", entity, "fields", name), f"{entity} has no field {name!r}")
    for stream_name, stream in spec.outbound_streams().items():
        assert stream.outbound is not None
        for name, entity in stream.outbound.context.items():
            if entity not in ENTITY_TABLES:
                add(
                    ("streams", stream_name, "outbound", "context", name),
                    f"{entity!r} is not a canonical entity",
                )
    return problems


def load_connector_file(path: Path) -> LoadedConnector:
    """Load and validate one `connector.yaml`; raise ConnectorFileError listing every problem."""
    path = Path(path)
    if path.is_dir():
        path = path / "connector.yaml"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConnectorFileError([Problem(path, None, "", f"cannot read file: {exc.strerror}")]) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConnectorFileError([Problem(path, line, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConnectorFileError([Problem(path, 1, "", "a connector file must be a YAML mapping")])
    try:
        spec = Connector.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                path,
                _line_of(node, tuple(err["loc"])),
                ".".join(str(p) for p in err["loc"]),
                err["msg"].removeprefix("Value error, "),
            )
            for err in exc.errors()
        ]
        raise ConnectorFileError(problems) from None
    hooks: dict[str, Any] = {}
    hooks_file = path.parent / "hooks.py"
    if hooks_file.exists():
        from integration_pipelines.mapping.hooks import load_hooks

        hooks = load_hooks(hooks_file)
    problems = _semantic_problems(spec, path, node, hooks)
    if problems:
        raise ConnectorFileError(problems)
    return LoadedConnector(spec=spec, path=path, hooks=hooks)


def connector_paths(root: Path = CONNECTORS_DIR) -> list[Path]:
    return sorted(p for p in root.glob("*/connector.yaml"))


@cache
def load_connectors(root: Path = CONNECTORS_DIR) -> dict[str, LoadedConnector]:
    """Every connector under `root`, by name. Fails loudly if any file is invalid."""
    loaded = [load_connector_file(p) for p in connector_paths(root)]
    return {c.name: c for c in loaded}


def get_connector(name: str) -> LoadedConnector:
    connectors = load_connectors()
    if name not in connectors:
        raise KeyError(f"unknown connector {name!r}; known: {', '.join(sorted(connectors))}")
    return connectors[name]
