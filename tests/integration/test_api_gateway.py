"""APIIntegrationGateway: the seed's field mappings, validation and POST /v1/process over HTTP."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import msgpack
import pytest
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.errors import (
    CoreError,
    EngineError,
    InvalidMemoryError,
    NotInitializedError,
    StoreError,
)
from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.errors import EchoError, InvalidInputError
from deep_tree_echo.integration.database import DatabaseGateway
from deep_tree_echo.integration.errors import (
    DatabaseUnavailableError,
    InvalidRequestError,
    QueryError,
    WriteNotAllowedError,
)
from deep_tree_echo.integration.gateway import APIIntegrationGateway, IntegrationGateway
from deep_tree_echo.proto import EchoRequest, EchoResponse
from deep_tree_echo.server.handlers import status_for
from deep_tree_echo.server.routes.process import answer_external

PROTOBUF = "application/x-protobuf"
MSGPACK = "application/msgpack"


class InspectAgent(Agent):
    """Returns what the gateway handed it, so tests can see the transformed request."""

    name: ClassVar[str] = "inspect"
    handles: ClassVar[frozenset[str]] = frozenset({"inspect"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        return AgentResult(
            text="seen", confidence=0.75,
            data={"seen_content": ctx.content, "seen_context": ctx.context,
                  "seen_session": ctx.session_id},
        )


@pytest.fixture
async def aar() -> AsyncIterator[AARGateway]:
    async with AARGateway({"test_mode": True}) as gw:
        gw.register_agent(InspectAgent())
        yield gw


@pytest.fixture
async def api(aar: AARGateway) -> AsyncIterator[APIIntegrationGateway]:
    gateway = APIIntegrationGateway({"test_mode": True}, aar_gateway=aar)
    await gateway.initialize()
    yield gateway
    await gateway.shutdown()


@pytest.fixture
async def client(api: APIIntegrationGateway) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(api.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


# -- mappings -----------------------------------------------------------------------------------


def test_transform_to_echo_format_maps_fields_like_the_seed() -> None:
    gw = APIIntegrationGateway({"test_mode": True})
    request = {"message_type": "question", "data": "hi", "source": "crm",
               "timestamp": "2024-01-01T00:00:00Z", "session_id": "s-1"}
    assert gw.transform_to_echo_format(request) == {
        "type": "question",
        "content": "hi",
        "context": {"external_source": "crm", "timestamp": "2024-01-01T00:00:00Z",
                    "session_id": "s-1"},
    }
    assert gw.transform_to_echo_format({}) == {
        "type": "text", "content": "",
        "context": {"external_source": "api", "timestamp": None, "session_id": None},
    }


def test_transform_from_echo_format_maps_fields_like_the_seed() -> None:
    gw = APIIntegrationGateway({"test_mode": True})
    echo = {"status": "success", "cognitive_response": {"text": "x"}, "processing_time": 0.5,
            "confidence": 0.9, "timestamp": "t", "session_id": "s"}
    assert gw.transform_from_echo_format(echo) == {
        "success": True, "data": {"text": "x"},
        "metadata": {"processing_time": 0.5, "confidence": 0.9},
    }
    assert gw.transform_from_echo_format({}) == {
        "success": False, "data": {}, "metadata": {"processing_time": None, "confidence": 0.0},
    }
    failed = gw.transform_from_echo_format(
        {"status": "error", "error": {"code": "boom", "message": "it broke"},
         "cognitive_response": {}, "processing_time": 0.1, "confidence": 0.0}
    )
    assert failed["success"] is False
    assert failed["error"] == {"code": "boom", "message": "it broke"}


@pytest.mark.parametrize(
    ("request_body", "needle"),
    [
        ([1, 2], "must be an object"),
        ({}, "'data' is required"),
        ({"data": "   "}, "'data' must not be empty"),
        ({"data": 42}, "'data' must be a string or an object"),
        ({"data": "x", "message_type": 5}, "'message_type'"),
        ({"data": "x", "source": ""}, "'source'"),
        ({"data": "x", "session_id": 7}, "'session_id'"),
        ({"data": "x", "session_id": "x" * 129}, "'session_id'"),
        ({"data": "x", "timestamp": {"y": 1}}, "'timestamp'"),
    ],
)
async def test_invalid_external_requests_raise_a_typed_error(
    api: APIIntegrationGateway, request_body: Any, needle: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await api.process_external_request(request_body)
    assert needle in info.value.message
    assert isinstance(info.value, InvalidInputError)
    assert info.value.to_dict()["code"] == "invalid_request"


async def test_process_external_request_reaches_the_agent_with_the_mapped_context(
    api: APIIntegrationGateway,
) -> None:
    before = time.perf_counter()
    result = await api.process_external_request(
        {"message_type": "inspect", "data": {"q": "hello"}, "source": "crm",
         "timestamp": "2024-05-01T10:00:00Z", "session_id": "sess-9"}
    )
    elapsed = time.perf_counter() - before
    assert result["success"] is True
    data = result["data"]
    assert data["agent"] == "inspect"
    assert data["seen_content"] == {"q": "hello"}
    assert data["seen_context"] == {"external_source": "crm",
                                    "timestamp": "2024-05-01T10:00:00Z", "session_id": "sess-9"}
    assert data["seen_session"] == "sess-9"
    assert result["metadata"]["confidence"] == 0.75
    # The AAR gateway's own measurement, passed through: positive and within the call.
    assert 0 < result["metadata"]["processing_time"] <= elapsed


# -- lifecycle ----------------------------------------------------------------------------------


class _BrokenGateway(AARGateway):
    async def initialize(self) -> None:
        raise StoreError("disk on fire")


async def test_connect_to_echo_system_returns_false_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = APIIntegrationGateway({"test_mode": True}, aar_gateway=_BrokenGateway({"test_mode": True}))
    with caplog.at_level(logging.ERROR):
        assert await gw.connect_to_echo_system() is False
    assert "Failed to connect to Echo system: disk on fire" in caplog.text


async def test_connect_to_echo_system_returns_true() -> None:
    gw = APIIntegrationGateway({"test_mode": True})
    assert await gw.connect_to_echo_system() is True
    assert gw.aar_gateway.initialized
    await gw.shutdown()
    assert not gw.aar_gateway.initialized  # it created the gateway, so it cleaned it up


async def test_a_shared_aar_gateway_is_used_and_not_cleaned_up(aar: AARGateway) -> None:
    gw = APIIntegrationGateway({"test_mode": True}, aar_gateway=aar)
    assert gw.aar_gateway is aar
    await gw.initialize()
    await gw.shutdown()
    assert aar.initialized


def test_base_class_is_abstract_and_sets_logger_and_connections() -> None:
    with pytest.raises(TypeError):
        IntegrationGateway({})  # type: ignore[abstract]
    gw = APIIntegrationGateway({"test_mode": True})
    assert gw.active_connections == {}
    assert gw.logger.name == "deep_tree_echo.integration.APIIntegrationGateway"
    assert isinstance(gw.aar_gateway, AARGateway)
    assert gw.aar_gateway.settings.test_mode is True


async def test_endpoints_are_mounted_once(api: APIIntegrationGateway) -> None:
    api.setup_api_endpoints()
    await api.initialize()
    paths = [getattr(r, "path", None) for r in api.router.routes]
    assert paths == ["/v1/process"]


# -- HTTP ---------------------------------------------------------------------------------------


async def test_http_json_round_trip(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/process", json={"message_type": "inspect", "data": "hello",
                                                "session_id": "web-1"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["success"] is True
    assert body["data"]["seen_content"] == "hello"
    assert body["data"]["seen_session"] == "web-1"
    assert set(body) == {"success", "data", "metadata"}


async def test_http_without_content_type_is_treated_as_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/process", content=b'{"data": "plain"}')
    assert r.status_code == 200
    assert r.json()["success"] is True


async def test_http_protobuf_round_trip(client: httpx.AsyncClient) -> None:
    request = EchoRequest(message_type="inspect", data="hi there", source="grpc-bridge",
                          session_id="pb-1", timestamp="2024-01-01T00:00:00Z")
    r = await client.post("/v1/process", content=request.SerializeToString(),
                          headers={"content-type": PROTOBUF, "accept": PROTOBUF})
    assert r.status_code == 200
    assert r.headers["content-type"] == PROTOBUF
    response = EchoResponse.FromString(r.content)
    assert response.success is True
    data = MessageToDict(response.data)
    assert data["agent"] == "inspect"
    assert data["seen_content"] == "hi there"
    assert data["seen_context"] == {"external_source": "grpc-bridge", "session_id": "pb-1",
                                    "timestamp": "2024-01-01T00:00:00Z"}
    assert response.metadata.confidence == 0.75
    assert response.processed_at_ms > 1_600_000_000_000
    assert not response.HasField("error")


async def test_http_protobuf_structured_payload(client: httpx.AsyncClient) -> None:
    request = EchoRequest(message_type="inspect")
    request.payload.update({"question": "why?", "n": 3})
    r = await client.post("/v1/process", content=request.SerializeToString(),
                          headers={"content-type": PROTOBUF})
    assert r.status_code == 200
    data = MessageToDict(EchoResponse.FromString(r.content).data)
    assert data["seen_content"] == {"question": "why?", "n": 3}
    assert data["seen_context"]["external_source"] == "api"


async def test_http_protobuf_with_data_and_payload_is_422(client: httpx.AsyncClient) -> None:
    request = EchoRequest(data="x")
    request.payload.update({"a": 1})
    r = await client.post("/v1/process", content=request.SerializeToString(),
                          headers={"content-type": PROTOBUF})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


async def test_http_msgpack_round_trip(client: httpx.AsyncClient) -> None:
    body = msgpack.packb({"message_type": "inspect", "data": {"k": [1, 2]}})
    r = await client.post("/v1/process", content=body, headers={"content-type": MSGPACK})
    assert r.status_code == 200
    assert r.headers["content-type"] == MSGPACK
    decoded = msgpack.unpackb(r.content)
    assert decoded["success"] is True
    assert decoded["data"]["seen_content"] == {"k": [1, 2]}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PROTOBUF, PROTOBUF),
        ("application/msgpack", MSGPACK),
        ("application/x-msgpack", MSGPACK),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("text/html, application/x-protobuf;q=0.5, application/msgpack;q=0.9", MSGPACK),
        ("application/json;q=0, */*;q=0.1", PROTOBUF),
    ],
)
async def test_http_accept_negotiation(
    client: httpx.AsyncClient, accept: str, expected: str
) -> None:
    r = await client.post("/v1/process", json={"data": "hi"}, headers={"accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"] == expected
    if expected == PROTOBUF:
        assert EchoResponse.FromString(r.content).success is True
    elif expected == MSGPACK:
        assert msgpack.unpackb(r.content)["success"] is True


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "needle"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "bad_request", "invalid JSON"),
        (b"[" * 200_000, {}, 400, "bad_request", "nested too deeply"),
        (b"\xff\xfe", {"content-type": "application/json"}, 400, "bad_request", "invalid JSON"),
        (b"\xff\xff\xff", {"content-type": PROTOBUF}, 400, "bad_request", "EchoRequest"),
        (b"\xc1", {"content-type": MSGPACK}, 400, "bad_request", "MessagePack"),
        (b"\x81\xa4data", {"content-type": MSGPACK}, 400, "bad_request", "MessagePack"),
        (b"hello", {"content-type": "text/plain"}, 415, "unsupported_media_type", "text/plain"),
        (b'{"data": "x"}', {"accept": "text/html"}, 406, "not_acceptable", "text/html"),
        (b'{"data": "x"}', {"accept": "application/json;q=0"}, 406, "not_acceptable", "q=0"),
        (b"[1]", {"content-type": "application/json"}, 422, "invalid_request", "object"),
        (b'{"source": "x"}', {}, 422, "invalid_request", "'data' is required"),
        (b"", {"content-type": PROTOBUF}, 422, "invalid_request", "'data' is required"),
    ],
)
async def test_http_errors(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], status: int, code: str,
    needle: str,
) -> None:
    r = await client.post("/v1/process", content=body, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]


async def test_http_echo_core_failure_is_reported_in_the_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/process", json={"data": "x" * 100_001})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"] == "content_too_large"
    assert body["data"] == {}
    assert set(body["metadata"]) == {"processing_time", "confidence"}


class FailingAgent(Agent):
    """Fails the way its input text says, so each core error code can reach the endpoint."""

    name: ClassVar[str] = "failing"
    handles: ClassVar[frozenset[str]] = frozenset({"fail"})

    async def handle(self, ctx: AgentContext) -> AgentResult:
        if ctx.text == "store":
            raise StoreError("disk on fire")
        if ctx.text == "engine":
            raise EngineError("engine down")
        if ctx.text == "crash":
            raise RuntimeError("kaput")
        if ctx.text == "contract":
            return "not an AgentResult"  # type: ignore[return-value]
        raise CoreError("I do not do that", code="declined", http_status=422)


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("store", 503, "store_error"),
        ("engine", 503, "engine_unavailable"),
        ("crash", 500, "internal_error"),
        ("contract", 500, "agent_error"),
        ("decline", 422, "declined"),
    ],
)
async def test_http_status_follows_the_core_error_code(
    aar: AARGateway, client: httpx.AsyncClient, text: str, status: int, code: str
) -> None:
    aar.register_agent(FailingAgent())
    for accept in ("application/json", MSGPACK):
        r = await client.post(
            "/v1/process", json={"message_type": "fail", "data": text}, headers={"accept": accept}
        )
        assert r.status_code == status, r.content
        body = r.json() if accept == "application/json" else msgpack.unpackb(r.content)
        assert body["success"] is False
        assert body["error"]["code"] == code
        assert set(body) == {"success", "data", "metadata", "error"}


async def test_http_status_when_the_core_is_closed(
    aar: AARGateway, client: httpx.AsyncClient
) -> None:
    await aar.cleanup()
    r = await client.post("/v1/process", json={"data": "hello"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "not_initialized"


async def test_library_api_returns_core_failures_without_raising(
    aar: AARGateway, api: APIIntegrationGateway
) -> None:
    aar.register_agent(FailingAgent())
    result = await api.process_external_request({"message_type": "fail", "data": "store"})
    assert result["success"] is False and result["error"]["code"] == "store_error"


class RaisingAgent(Agent):
    """Raises the error it was given, so any EchoError can reach the external response."""

    name: ClassVar[str] = "raising"
    handles: ClassVar[frozenset[str]] = frozenset({"raise"})

    def __init__(self, error: EchoError) -> None:
        self.error = error

    async def handle(self, ctx: AgentContext) -> AgentResult:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInputError("bad", code="invalid_type"), 400),
        (InvalidMemoryError("bad id"), 400),
        (EngineError("down"), 503),
        (StoreError("disk"), 503),
        (NotInitializedError("later"), 503),
        (CoreError("kaput", code="internal_error"), 500),
        (QueryError("no such table"), 400),
        (WriteNotAllowedError("read-only"), 403),
        (DatabaseUnavailableError("gone"), 503),
        (CoreError("not mine", code="declined", http_status=422), 422),
    ],
)
async def test_the_status_is_the_status_the_error_declares(
    aar: AARGateway, api: APIIntegrationGateway, error: EchoError, status: int
) -> None:
    aar.register_agent(RaisingAgent(error))
    result = await api.process_external_request({"message_type": "raise", "data": "x"})
    assert result["error"] == {"code": error.code, "message": error.message, "http_status": status}
    response, http_status = await answer_external(aar, {"message_type": "raise", "data": "x"})
    assert http_status == status
    assert response["error"] == result["error"]


def test_an_error_without_a_usable_status_is_500() -> None:
    assert status_for(EchoError("m")) == 500
    assert status_for(EchoError("m", http_status=99)) == 500
    assert status_for(EchoError("m", http_status=429)) == 429


async def test_http_no_agent_for_the_type_is_422(
    aar: AARGateway, client: httpx.AsyncClient
) -> None:
    assert aar.agents.unregister("echo")
    r = await client.post("/v1/process", json={"message_type": "unheard-of", "data": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "no_agent"


async def test_http_database_errors_keep_their_status(
    aar: AARGateway, client: httpx.AsyncClient
) -> None:
    database = DatabaseGateway({"url": "sqlite://"}, aar_gateway=aar)  # read-only by default
    await database.initialize()
    try:
        r = await client.post(
            "/v1/process",
            json={"message_type": "sql_query", "data": {"query": "SELECT * FROM nope"}},
        )
        assert r.status_code == 400, r.content
        assert r.json()["error"]["code"] == "query_error"
        r = await client.post(
            "/v1/process",
            json={"message_type": "sql_query", "data": {"query": "CREATE TABLE t (x int)"}},
        )
        assert r.status_code == 403, r.content
        assert r.json()["error"]["code"] == "write_not_allowed"
        r = await client.post(
            "/v1/process", json={"message_type": "nosql_query", "data": {"query": "GET k"}}
        )
        assert r.status_code == 503, r.content
        assert r.json()["error"]["code"] == "database_unavailable"
    finally:
        await database.shutdown()


# -- edges the mutants found --------------------------------------------------------------------


def test_transform_to_echo_format_keeps_a_memory_scope_and_refuses_non_objects() -> None:
    gw = APIIntegrationGateway({"test_mode": True})
    echo = gw.transform_to_echo_format({"data": "hi", "context": {"memory_scope": "tenant"}})
    assert echo["context"]["memory_scope"] == "tenant"
    for context in ({"memory_scope": None}, {"other": 1}, "not a mapping"):
        assert "memory_scope" not in gw.transform_to_echo_format({"context": context})["context"]
    with pytest.raises(InvalidRequestError, match=r"^request must be an object, not list$"):
        gw.transform_to_echo_format(["not", "an", "object"])  # type: ignore[arg-type]


async def test_process_external_request_writes_into_the_callers_tenant() -> None:
    gw = APIIntegrationGateway({"test_mode": True})
    await gw.initialize()
    try:
        response = await gw.process_external_request(
            {"message_type": "text", "data": "the lab opens at nine", "session_id": "s-t"},
            tenant="acme",
        )
        assert response["success"] is True
        memory = gw.aar_gateway.memory
        assert await memory.for_tenant("acme").count() > 0
        assert await memory.count() == 0  # nothing in the default tenant
    finally:
        await gw.shutdown()


async def test_initialized_follows_initialize_and_shutdown() -> None:
    gw = APIIntegrationGateway()
    assert gw.config == {} and gw.initialized is False
    await gw.initialize()
    assert gw.initialized is True
    await gw.shutdown()
    assert gw.initialized is False


def test_settings_given_as_echo_settings_are_kept_as_a_dict() -> None:
    from deep_tree_echo.config import EchoSettings

    gw = APIIntegrationGateway(EchoSettings(test_mode=True))
    assert gw.config["test_mode"] is True
