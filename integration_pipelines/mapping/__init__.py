"""Layer 2, data mapping: partner records -> a DataFrame of canonical fields -> pandera validation.

The contract of a `FieldMapping` (connectors/spec.py), as this engine implements it:

Source, exactly one of
- `path`: dotted path; a segment is a key or a list index (`Telephones.0.Raw`, `Title.0`, `-1` is the
  last item). Index 0 of a value that is not a list is the value itself (XML: one element comes as a
  dict, several as a list). A path absent from every record is an all-null column, not an error.
- `concat`: items joined row by row. `'quoted'` items are literals; other items written like a path
  (dot-separated segments of letters, digits and `_ - @ # $ :`) are paths; anything else (a space, a
  comma, other punctuation, empty) is a literal - a bare word is a path, quote it for text.
  Each value is written after the literals between it and the previous path item (and `separator`),
  except the first value written, so a null or empty value disappears with the literals before it.
  Literals before the first / after the last path item are a prefix / suffix, written if any value is.
  `[location.city, ", ", location.region]` -> "Austin, TX", "Austin" without a region, "TX" without
  a city, null without both.
- `value`: a constant. `hook`: a `@transform` function of the connector's hooks.py, given the flat raw
  frame, returning a Series aligned to it.
Then, in order
- `map`: values matched by their text; an unmapped non-null value takes `default` if there is one,
  otherwise it is a row error ("status: unmapped value 'WEIRD' (known: OPEN, CLOSED)").
- `type`: string | integer (Int64) | number (float64) | decimal (float64 rounded to 2 places) |
  boolean | date (datetime.date; `format`, or ISO with partial YYYY-MM / YYYY) | datetime (UTC;
  `format` or ISO; naive values in `timezone`, default UTC) | list. See `coercion` for the details.
  Empty text is null. A value that does not parse is a row error.
- `lookup`: the value (as text) is a partner external id of that entity; resolved to the ATS id by the
  injected `lookup(entity, ids)`; an unknown non-null id is a row error.
- `default`: fills what is still null (coerced to `type` up front; a bad default is a config error).

Errors in the data are rows of an error table (`row`, `field`, `reason`) and the batch goes on;
mistakes in the mapping raise `MappingConfigError`.
"""

from integration_pipelines.mapping.coercion import TYPES, as_text, coerce
from integration_pipelines.mapping.engine import MappingResult, check_mapping, map_records
from integration_pipelines.mapping.errors import ERROR_COLUMNS, MappingConfigError, empty_errors
from integration_pipelines.mapping.hooks import load_hooks, transform
from integration_pipelines.mapping.operations import parse_concat
from integration_pipelines.mapping.paths import as_list, flatten_records, get_path, is_path, resolve_path
from integration_pipelines.mapping.validation import ValidationResult, combine_errors, validate_frame

__all__ = [
    "ERROR_COLUMNS",
    "TYPES",
    "MappingConfigError",
    "MappingResult",
    "ValidationResult",
    "as_list",
    "as_text",
    "check_mapping",
    "coerce",
    "combine_errors",
    "empty_errors",
    "flatten_records",
    "get_path",
    "is_path",
    "load_hooks",
    "map_records",
    "parse_concat",
    "resolve_path",
    "transform",
    "validate_frame",
]
