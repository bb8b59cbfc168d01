"""`map_records`: partner records -> one DataFrame of canonical fields, plus the rows that failed."""

import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from integration_pipelines.connectors.spec import FieldMapping
from integration_pipelines.mapping.coercion import coerce
from integration_pipelines.mapping.errors import (
    MappingConfigError,
    concat_errors,
    empty_errors,
    error_frame,
)
from integration_pipelines.mapping.operations import (
    ConcatPart,
    Lookup,
    apply_default,
    apply_lookup,
    apply_map,
    apply_type,
    call_hook,
    concat_values,
    constant,
    parse_concat,
    shape_items,
)
from integration_pipelines.mapping.paths import flatten_records, resolve_path

Hooks = Mapping[str, Callable[[pd.DataFrame], pd.Series]]


@dataclass
class MappingResult:
    """One mapped batch: `frame` has a row per record (index 0..n-1) and a column per mapped field;
    `errors` has a row per (record, field) that could not be mapped: columns `row`, `field`, `reason`.
    A rejected record still has its row in `frame`, with the failed fields null."""

    frame: pd.DataFrame
    errors: pd.DataFrame

    def rejected_rows(self) -> set[int]:
        """Positions of the records with at least one mapping error."""
        return set(self.errors["row"].tolist())

    def accepted(self) -> pd.DataFrame:
        """`frame` without the rejected rows (index kept, so positions still point at records)."""
        return self.frame.drop(index=sorted(self.rejected_rows()))


@dataclass(frozen=True)
class _Field:
    name: str
    spec: FieldMapping
    default: Any  # already coerced to `spec.type`
    concat: list[ConcatPart] | None


def check_mapping(
    mapping: Mapping[str, FieldMapping | Mapping[str, Any] | str],
    *,
    hooks: Hooks | None = None,
    lookup_available: bool = True,
) -> dict[str, FieldMapping]:
    """Validate a mapping against the hooks it may call; raise `MappingConfigError` on the first mistake.

    Also accepts the connector-file forms (`"a.b"` for `{path: a.b}`, plain dicts). Returns the
    mapping as `FieldMapping`s. Call it when a connector is loaded to fail before any sync runs.
    """
    return {f.name: f.spec for f in _compile(mapping, hooks or {}, lookup_available)}


def _compile(mapping: Mapping[str, Any], hooks: Hooks, lookup_available: bool) -> list[_Field]:
    fields = []
    for name, raw_spec in mapping.items():
        spec = _as_field_mapping(name, raw_spec)
        where = f"field {name!r}"
        if spec.path is not None and (not spec.path or "" in spec.path.split(".")):
            raise MappingConfigError(f"{where}: path {spec.path!r} has an empty segment")
        concat = None
        if spec.concat is not None:
            concat = parse_concat(spec.concat)
            if not any(part.is_path for part in concat):
                raise MappingConfigError(f"{where}: concat {spec.concat!r} has no path item, only literals")
        if spec.hook is not None and spec.hook not in hooks:
            available = ", ".join(sorted(hooks)) or "none (the connector has no @transform functions)"
            raise MappingConfigError(
                f"{where}: hook {spec.hook!r} is not defined; available hooks: {available}"
            )
        if spec.lookup is not None and not lookup_available:
            raise MappingConfigError(f"{where}: resolves {spec.lookup} ids but no lookup was given")
        if spec.format is not None and spec.type not in ("date", "datetime"):
            raise MappingConfigError(f"{where}: format applies to type date or datetime, not {spec.type}")
        if spec.timezone is not None:
            if spec.type != "datetime":
                raise MappingConfigError(f"{where}: timezone applies to type datetime, not {spec.type}")
            try:
                zoneinfo.ZoneInfo(spec.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise MappingConfigError(f"{where}: unknown timezone {spec.timezone!r}") from exc
        default = spec.default
        if spec.type is not None and spec.map:
            _check_typed(where, "map value", [v for v in spec.map.values() if v is not None], spec)
        if spec.type not in (None, "list") and default is not None:
            default = _check_typed(where, "default", [default], spec).iloc[0]
        fields.append(_Field(name, spec, default, concat))
    return fields


def _as_field_mapping(name: str, spec: Any) -> FieldMapping:
    if isinstance(spec, FieldMapping):
        return spec
    try:
        return FieldMapping(path=spec) if isinstance(spec, str) else FieldMapping.model_validate(spec)
    except ValidationError as exc:
        raise MappingConfigError(f"field {name!r}: {exc}") from exc


def _check_typed(where: str, what: str, values: list[Any], spec: FieldMapping) -> pd.Series:
    assert spec.type is not None
    result = coerce(pd.Series(values, dtype=object), spec.type, fmt=spec.format, timezone=spec.timezone)
    if result.bad.any():
        bad = np.asarray(values, dtype=object)[result.bad][0]
        raise MappingConfigError(f"{where}: {what} {bad!r} is not {result.expected}")
    return result.values


def map_records(
    records: Sequence[Mapping[str, Any]],
    mapping: Mapping[str, FieldMapping],
    *,
    hooks: Hooks | None = None,
    lookup: Lookup | None = None,
) -> MappingResult:
    """Map a page of partner records to canonical fields, column by column.

    The records are flattened once (`paths.flatten_records`); every field is then computed on whole
    columns: source (`path`, `concat`, `value` or `hook`), `map`, `type`, `lookup`, `default`.
    Values that cannot be mapped are row errors, not exceptions; a missing path is all null.
    Raises `MappingConfigError` for mapping mistakes (unknown hook, lookup needed but not given...).
    """
    fields = _compile(mapping, hooks or {}, lookup is not None)
    raw = flatten_records(records)
    columns: dict[str, pd.Series] = {}
    errors = []
    for f in fields:
        columns[f.name], field_errors = _map_field(f, raw, hooks or {}, lookup)
        errors.append(field_errors)
    frame = pd.DataFrame(columns, index=raw.index, copy=False) if columns else pd.DataFrame(index=raw.index)
    all_errors = concat_errors(errors)
    if len(all_errors):
        all_errors = all_errors.sort_values("row", kind="stable", ignore_index=True)
    return MappingResult(frame=frame, errors=all_errors)


def _map_field(
    f: _Field, raw: pd.DataFrame, hooks: Hooks, lookup: Lookup | None
) -> tuple[pd.Series, pd.DataFrame]:
    spec = f.spec
    if spec.path is not None:
        values = resolve_path(raw, spec.path)
    elif f.concat is not None:
        values = concat_values(raw, f.concat, spec.separator)
    elif spec.hook is not None:
        values = call_hook(raw, spec.hook, hooks[spec.hook], f.name)
    else:
        values = constant(raw, spec.value)
    if spec.items is not None:
        values = shape_items(values, spec.items)

    failed = np.zeros(len(raw), dtype=bool)
    errors = []
    steps = []
    if spec.map is not None:
        steps.append(lambda v: apply_map(v, spec.map, spec.default, f.name))
    if spec.type is not None:
        steps.append(lambda v: apply_type(v, spec.type, spec.format, spec.timezone, f.name))
    if spec.lookup is not None:
        assert lookup is not None
        steps.append(lambda v: apply_lookup(v, spec.lookup, lookup, f.name, spec.lookup_missing))
    for run in steps:
        step = run(values)
        values = step.values
        if step.bad is not None and step.bad.any():
            errors.append(error_frame(np.flatnonzero(step.bad), f.name, step.reasons))
            failed |= step.bad
    values = apply_default(values, f.default, failed)
    return values.rename(f.name), concat_errors(errors) if errors else empty_errors()
