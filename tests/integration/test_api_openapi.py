"""The OpenAPI document: valid OpenAPI 3.1, describing exactly the routes served, and
describing real answers correctly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from jobdeck.api import create_api
from jobdeck.api.openapi import openapi_document
from jobdeck.app import Application, Options
from tests.integration.test_api_harness import serving, wait_for_end

pytestmark = pytest.mark.anyio

DOCUMENTED = re.compile(r"^/(api/v1/|healthz$|metrics$|openapi\.json$)")


def served_operations(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= served_operations(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method.lower(), path))
    return found


def test_the_document_is_valid_openapi_31() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_document_describes_exactly_the_routes_served(tmp_path: Path) -> None:
    app = Application(Options(state_dir=tmp_path / "state", isolation="rlimit", environ={}))
    try:
        service = create_api(app)
        served = {op for op in served_operations(service.routes) if DOCUMENTED.match(op[1])}
    finally:
        app.store.close()
    documented = {
        (method, path)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }
    assert served == documented


def check(document: dict[str, Any], schema: str, instance: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert not problems, problems


async def test_real_answers_match_the_document(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        document = (await client.get("/openapi.json")).json()
        assert document == openapi_document()

        started = await client.post("/api/v1/schedules/hello/runs", json={})
        check(document, "Run", started.json())
        await wait_for_end(client, started.json()["id"])
        detail = (await client.get(f"/api/v1/runs/{started.json()['id']}")).json()
        check(document, "RunDetail", detail)
        page = (await client.get("/api/v1/runs?limit=1")).json()
        for item in page["items"]:
            check(document, "Run", item)
        for path, schema in (
            ("/api/v1/schedules", "Schedule"),
            ("/api/v1/workers", "Worker"),
            ("/api/v1/commands", "Command"),
            ("/api/v1/revisions", "Revision"),
            ("/api/v1/audit", "AuditEntry"),
            ("/api/v1/nodes", "Node"),
        ):
            items = (await client.get(path)).json()["items"]
            assert items, path
            for item in items:
                check(document, schema, item)
        check(document, "ScheduleDetail", (await client.get("/api/v1/schedules/hello")).json())
        held = await client.post("/api/v1/schedules/slow/suspend", json={"reason": "test"})
        check(document, "Suspension", held.json())
        check(document, "Error", (await client.get("/api/v1/runs/999")).json())
