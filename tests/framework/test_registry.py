"""Connector files: every shipped connector loads; broken files get precise errors."""

from pathlib import Path

import pytest

from integration_pipelines.connectors.registry import ConnectorFileError, load_connector_file, load_connectors

GOOD = """\
name: {name}
title: Example
category: vms
base_url: "https://{{config.region}}.example.test/v2"
config:
  region: {{default: us}}
auth: {{kind: api_key, location: header, keys: {{X-Api-Key: api_key}}}}
pagination: {{kind: offset, page_size: 10}}
streams:
  jobs:
    direction: inbound
    entity: job
    request: {{path: /jobs}}
    records: items
    primary_key: id
    mapping:
      external_id: id
      title: name
      status: {{path: state, map: {{OPEN: open}}}}
"""


def write(tmp_path: Path, text: str, name: str = "example") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "connector.yaml"
    path.write_text(text)
    return path


def test_shipped_connectors_load() -> None:
    connectors = load_connectors()
    assert {"textkernel", "daxtra", "beeline", "sap_fieldglass"} <= set(connectors)
    assert connectors["beeline"].spec.auth.kind == "oauth2_client_credentials"
    assert connectors["sap_fieldglass"].spec.credential_names == [
        "client_id",
        "license_key",
        "application_key",
    ]
    assert "positions" in connectors["daxtra"].hooks


def test_good_file_loads(tmp_path: Path) -> None:
    loaded = load_connector_file(write(tmp_path, GOOD.format(name="example")))
    assert loaded.spec.streams["jobs"].mapping["title"].path == "name"


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    text = GOOD.format(name="example").replace("direction: inbound", "direction: sideways")
    path = write(tmp_path, text)
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(path)
    problem = err.value.problems[0]
    assert problem.file == path
    assert problem.field == "streams.jobs.direction"
    assert problem.line == 11
    assert "inbound" in problem.message and "sideways" not in str(problem.field)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    text = GOOD.format(name="example").replace("    records: items", "    recrods: items")
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(write(tmp_path, text))
    assert any(p.field == "streams.jobs.recrods" and p.line == 14 for p in err.value.problems)


def test_mapping_target_must_be_an_entity_field(tmp_path: Path) -> None:
    text = GOOD.format(name="example").replace("title: name", "headline: name")
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(write(tmp_path, text))
    (problem,) = err.value.problems
    assert problem.field == "streams.jobs.mapping.headline"
    assert "job has no field 'headline'" in problem.message


def test_undeclared_placeholder_and_folder_name(tmp_path: Path) -> None:
    text = GOOD.format(name="other").replace("{config.region}", "{config.zone}")
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(write(tmp_path, text))
    messages = " | ".join(str(p) for p in err.value.problems)
    assert "{config.zone}" in messages
    assert "must match its folder name" in messages


def test_missing_hook_is_reported(tmp_path: Path) -> None:
    text = GOOD.format(name="example").replace("title: name", "title: {hook: clean_title}")
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(write(tmp_path, text))
    assert "hook 'clean_title' is not defined" in err.value.problems[0].message


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConnectorFileError) as err:
        load_connector_file(write(tmp_path, "name: [unclosed\n"))
    assert "not valid YAML" in str(err.value)
