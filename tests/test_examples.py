"""Every spec in examples/ is accepted by the API as it is."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_example_is_accepted(client: TestClient, path: Path) -> None:
    response = client.post("/v1/jobs", json=json.loads(path.read_text()))
    assert response.status_code == 201, response.text


def test_the_examples_the_readme_names_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"digits.json", "mnist1d-transfer.json"}
