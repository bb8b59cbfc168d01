"""Connector-file placeholders: values by dotted name, never a whole namespace."""

from datetime import date

import pytest

from integration_pipelines.templates import TemplateError, placeholders, render, render_value

CREDS = {"application_key": "app-key-1", "client_secret": "s3cret"}


def test_fills_dotted_names_with_format_specs() -> None:
    namespaces = {
        "credentials": CREDS,
        "config": {"site": "eu"},
        "document": {"updated_at": date(2024, 5, 7)},
    }
    assert render("Key {credentials.application_key}/{config.site}", namespaces) == "Key app-key-1/eu"
    assert render("{document.updated_at:%Y-%m-%d}", namespaces) == "2024-05-07"
    assert render_value({"a": ["{config.site}", 3]}, namespaces) == {"a": ["eu", 3]}


def test_missing_names_are_named_without_values() -> None:
    with pytest.raises(TemplateError) as err:
        render("{credentials.missing} {credentials.client_secret}", {"credentials": CREDS})
    assert "credentials.missing" in str(err.value) and "s3cret" not in str(err.value)
    with pytest.raises(TemplateError):
        render("{nothing.here}", {"credentials": CREDS})


def test_a_whole_namespace_is_never_printed() -> None:
    with pytest.raises(TemplateError) as err:
        render("{credentials}", {"credentials": CREDS})
    assert "s3cret" not in str(err.value)


def test_placeholders_lists_names() -> None:
    assert placeholders("https://{config.env}.{config.domain}/api") == ["config.env", "config.domain"]
