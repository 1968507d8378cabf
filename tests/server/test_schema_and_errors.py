"""The schema documents what the server enforces; 405 lists every method; refusals are counted
under their route."""

from __future__ import annotations

import re

from _server_helpers import AppClient

from deep_tree_echo.aar_core.sessions import SESSION_ID_PATTERN, validate_session_id
from deep_tree_echo.tenants import TENANT_PATTERN

KEY = "k-" + "s" * 30
CLUSTER = "c-" + "c" * 30
AUTH = {"Authorization": f"Bearer {KEY}"}


async def test_405_lists_every_method_of_the_path(app_client: AppClient) -> None:
    async with app_client() as c:
        r = await c.patch("/v1/memories/x", json={})
        assert r.status_code == 405
        assert r.headers["allow"] == "DELETE, GET, PUT"
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = await c.get("/v1/process")
        assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_refusals_are_counted_under_their_route(app_client: AppClient) -> None:
    async with app_client(api_keys=KEY, cluster_key=CLUSTER) as c:
        assert (await c.get("/v1/memories/x")).status_code == 401
        assert (await c.get("/v1/memories/x", headers={"Authorization": f"Bearer {CLUSTER}"})
                ).status_code == 403
        assert (await c.get("/v1/replica/records/x", headers=AUTH)).status_code == 403
        text = (await c.get("/metrics", headers=AUTH)).text
    line = 'dte_http_requests_total{method="GET",route="%s",status="%s"} 1.0'
    assert line % ("/v1/memories/{memory_id}", 401) in text
    assert line % ("/v1/memories/{memory_id}", 403) in text
    assert line % ("/v1/replica/records/{memory_id}", 403) in text
    assert 'route="unmatched",status="401"' not in text


async def test_the_schema_states_auth_ids_and_errors(app_client: AppClient) -> None:
    async with app_client(api_keys=KEY, cluster_key=CLUSTER) as c:
        assert (await c.get("/docs")).status_code == 200  # usable without a key ...
        doc = (await c.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    get = doc["paths"]["/v1/memories/{memory_id}"]["get"]
    assert get["security"] == [{"apiKey": []}]  # ... and sends the key it is given
    params = {p["name"]: p for p in get["parameters"]}
    # "(?![\s\S])" ends the string in every regex flavour; Python's "$" would also match
    # before a trailing newline, so a validator using re.search would allow "id\n"
    assert params["memory_id"]["schema"]["pattern"] == r"^[^/\x00-\x1f\x7f-\x9f]+(?![\s\S])"
    assert params["memory_id"]["schema"]["minLength"] == 1
    assert params["X-Echo-Tenant"]["schema"]["pattern"] == TENANT_PATTERN
    assert {"401", "403", "404", "422", "500", "503"} <= set(get["responses"])
    assert get["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    replica = doc["paths"]["/v1/replica/records/{memory_id}"]["put"]
    assert replica["security"] == [{"clusterKey": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    body = doc["paths"]["/v1/process"]["post"]["requestBody"]["content"]["application/json"]
    session = body["schema"]["properties"]["session_id"]
    assert session["pattern"] == SESSION_ID_PATTERN and session["maxLength"] == 128
    for every in doc["paths"].values():
        for op in every.values():
            assert "500" in op["responses"]


def test_the_session_id_pattern_is_what_the_server_checks() -> None:
    pattern = re.compile(SESSION_ID_PATTERN)
    for value in ["a", " a ", "é", "x\x01", " ", "", "\x85", "\t", "tab\tin", "s\n", "s\n\n"]:
        try:
            validate_session_id(value)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == (pattern.search(value) is not None), repr(value)


async def test_every_other_search_parameter_is_a_filter_and_the_schema_says_so(
    app_client: AppClient,
) -> None:
    async with app_client() as c:
        r = await c.put("/v1/memories/m", json={"content": "x", "exclude": "yes", "limit": "3"})
        assert r.status_code == 201
        # "exclude" was a 500 (it collided with search()'s own keyword); now a plain filter
        hit = await c.get("/v1/memories", params={"exclude": "yes"})
        assert hit.status_code == 200 and [x["id"] for x in hit.json()["results"]] == ["m"]
        miss = await c.get("/v1/memories", params={"exclude": "no", "": ""})
        assert miss.status_code == 200 and miss.json()["results"] == []
        # the schema's name of the filters object is no field filter (fuzzers send ?filters=)
        bad = await c.get("/v1/memories", params={"filters": ""})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
        doc = (await c.get("/openapi.json")).json()
    params = {p["name"]: p for p in doc["paths"]["/v1/memories"]["get"]["parameters"]}
    filters = params["filters"]  # a schema-driven client knows other parameters are filters
    assert (filters["in"], filters["style"], filters["explode"]) == ("query", "form", True)
    assert filters["schema"]["additionalProperties"] == {"type": "string"}
    assert set(filters["schema"]["propertyNames"]["not"]["enum"]) == {
        "query", "limit", "token", "include_questions", "filters"}
