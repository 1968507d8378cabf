"""Seed pattern 1 — the gateway: one entry point for external systems.

Runs an APIIntegrationGateway in-process, calls it directly, then over HTTP
(POST /v1/process) in JSON, Protocol Buffers and MessagePack.

    .venv/bin/python examples/gateway_pattern.py
"""

from __future__ import annotations

import asyncio

import httpx
import msgpack
from fastapi import FastAPI

from deep_tree_echo.integration.gateway import APIIntegrationGateway
from deep_tree_echo.proto import EchoRequest, EchoResponse


async def main() -> None:
    gateway = APIIntegrationGateway({"test_mode": True})
    await gateway.initialize()

    # 1. directly: the external format in, the external format out
    result = await gateway.process_external_request(
        {"message_type": "text", "data": "The meeting moved to Friday.", "session_id": "demo"}
    )
    print("direct: success =", result["success"], "| agent =", result["data"]["agent"])

    # 2. over HTTP: mount the router on any FastAPI app
    app = FastAPI()
    app.include_router(gateway.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://echo") as client:
        r = await client.post("/v1/process", json={"data": "When is the meeting?",
                                                    "session_id": "demo"})
        print("json:", r.status_code, r.headers["content-type"], "success =", r.json()["success"])

        body = EchoRequest(data="Hello from protobuf", session_id="demo").SerializeToString()
        r = await client.post("/v1/process", content=body,
                              headers={"content-type": "application/x-protobuf"})
        print("protobuf:", r.status_code, r.headers["content-type"],
              "success =", EchoResponse.FromString(r.content).success)

        r = await client.post("/v1/process", content=msgpack.packb({"data": "Hi in msgpack"}),
                              headers={"content-type": "application/msgpack",
                                       "accept": "application/json"})
        print("msgpack in, json out:", r.status_code, r.headers["content-type"])

        r = await client.post("/v1/process", json={"source": "crm"})
        print("invalid:", r.status_code, r.json()["error"]["code"])

    await gateway.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
