"""Seed pattern 2 — event-driven integration: WebSocket-style clients and the Echo core
exchange events through the gateway's EventBus.

    .venv/bin/python examples/event_driven_pattern.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.event_driven import WebSocketIntegration


class PrintingManager:
    """A stand-in for the server's ConnectionManager: prints what it would send."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()

    async def broadcast(self, message: dict[str, Any], *, session_id: str | None = None) -> int:
        print(f"to session {session_id}: type={message['type']}")
        if message["type"] == "agent_message":
            self.answered.set()
        return 1


async def main() -> None:
    manager = PrintingManager()
    async with AARGateway({"test_mode": True}) as gateway:
        integration = WebSocketIntegration(manager, event_bus=gateway.event_bus)

        # a client sent {"type": "user.message", ...} over its socket
        await integration.emit_to_external(
            "user.message", {"message": "Remember: the wifi password is swordfish",
                             "user_id": "ada", "session_id": "room-1"}
        )
        await manager.answered.wait()
        await gateway.wait_idle()

        # any external system can listen too; handlers run concurrently
        async def audit(event: dict[str, Any]) -> None:
            print("audit saw:", event["action"])

        integration.register_external_handler("audit", audit)
        await integration.emit_to_external("audit", {"action": "login"})
        integration.close()
    print("done")


if __name__ == "__main__":
    asyncio.run(main())
