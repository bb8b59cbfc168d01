import sys
import textwrap

import pandas as pd
import pytest

from integration_pipelines.mapping import MappingConfigError, load_hooks, map_records, transform
from integration_pipelines.mapping.hooks import TRANSFORM_ATTR

HOOKS_PY = textwrap.dedent(
    """
    import pandas as pd

    from integration_pipelines.mapping import resolve_path, transform


    @transform
    def full_name(raw: pd.DataFrame) -> pd.Series:
        return resolve_path(raw, "name.first") + " " + resolve_path(raw, "name.last")


    @transform("phone")
    def first_phone(raw: pd.DataFrame) -> pd.Series:
        return resolve_path(raw, "phones.0.number")


    @transform(name="initials")
    def initials(raw):
        return resolve_path(raw, "name.first").str[0]


    def helper(raw):  # not decorated: not a hook
        return raw


    @transform
    def _private(raw):  # private: not a hook
        return raw
    """
)


def write_hooks(directory, source=HOOKS_PY):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hooks.py"
    path.write_text(source)
    return path


def test_transform_forms():
    @transform
    def a(raw):
        return raw

    @transform()
    def b(raw):
        return raw

    @transform("renamed")
    def c(raw):
        return raw

    assert [getattr(f, TRANSFORM_ATTR) for f in (a, b, c)] == ["a", "b", "renamed"]
    assert a(1) == 1  # the function is returned unchanged
    with pytest.raises(TypeError):
        transform("")


def test_load_hooks_returns_public_transforms_by_name(tmp_path):
    hooks = load_hooks(write_hooks(tmp_path / "acme"))
    assert sorted(hooks) == ["full_name", "initials", "phone"]
    records = [
        {"name": {"first": "Ada", "last": "Lovelace"}, "phones": [{"number": "555"}]},
        {"name": {"first": "Alan", "last": "Turing"}},
    ]
    result = map_records(
        records,
        {"name": {"hook": "full_name"}, "phone": {"hook": "phone"}, "ini": {"hook": "initials"}},
        hooks=hooks,
    )
    assert result.frame["name"].tolist() == ["Ada Lovelace", "Alan Turing"]
    assert result.frame["phone"].tolist() == ["555", None]
    assert result.frame["ini"].tolist() == ["A", "A"]


def test_load_hooks_from_connector_directory_and_without_hooks_file(tmp_path):
    write_hooks(tmp_path / "acme")
    assert "phone" in load_hooks(tmp_path / "acme")
    (tmp_path / "plain").mkdir()
    assert load_hooks(tmp_path / "plain") == {}
    with pytest.raises(MappingConfigError, match="does not exist"):
        load_hooks(tmp_path / "plain" / "hooks.py")


def test_two_connectors_with_same_hook_names_do_not_collide(tmp_path):
    one = load_hooks(
        write_hooks(
            tmp_path / "one",
            "from integration_pipelines.mapping import transform\n"
            "@transform\ndef code(raw):\n    return raw.index.to_series() * 0 + 1\n",
        )
    )
    two = load_hooks(
        write_hooks(
            tmp_path / "two",
            "from integration_pipelines.mapping import transform\n"
            "@transform\ndef code(raw):\n    return raw.index.to_series() * 0 + 2\n",
        )
    )
    raw = pd.DataFrame({"a": [0]})
    assert one["code"](raw).tolist() == [1]
    assert two["code"](raw).tolist() == [2]
    assert one["code"].__module__ != two["code"].__module__
    assert one["code"].__module__ in sys.modules


def test_duplicate_hook_names_in_one_file_are_refused(tmp_path):
    source = (
        "from integration_pipelines.mapping import transform\n"
        "@transform('x')\ndef a(raw):\n    return raw\n"
        "@transform('x')\ndef b(raw):\n    return raw\n"
    )
    with pytest.raises(MappingConfigError, match="two functions are registered as hook 'x'"):
        load_hooks(write_hooks(tmp_path / "dup", source))


def test_import_error_in_hooks_file_names_the_file(tmp_path):
    path = write_hooks(tmp_path / "bad", "raise RuntimeError('broken connector')\n")
    with pytest.raises(RuntimeError, match="broken connector") as info:
        load_hooks(path)
    assert any(str(path) in note for note in info.value.__notes__)


def test_mapping_naming_an_undefined_hook_lists_the_defined_ones(tmp_path):
    hooks = load_hooks(write_hooks(tmp_path / "acme"))
    with pytest.raises(MappingConfigError) as info:
        map_records([{}], {"x": {"hook": "fullname"}}, hooks=hooks)
    assert str(info.value) == (
        "field 'x': hook 'fullname' is not defined; available hooks: full_name, initials, phone"
    )
