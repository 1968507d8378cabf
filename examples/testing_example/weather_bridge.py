"""A tiny integration: fetch a forecast from an external weather API, remember it in Echo,
ask Echo about it and notify a chat service with the answer."""

from __future__ import annotations

from typing import Any, Protocol

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.resilience import ResilientAPIIntegration


class Notifier(Protocol):
    """The chat service we post answers to (an external SDK in real life)."""

    async def send(self, channel: str, text: str) -> dict[str, Any]: ...


class WeatherBridge:
    def __init__(
        self, gateway: AARGateway, weather_api: ResilientAPIIntegration, notifier: Notifier
    ) -> None:
        self.gateway = gateway
        self.weather_api = weather_api
        self.notifier = notifier

    async def report(self, city: str, channel: str) -> dict[str, Any]:
        forecast = await self.weather_api.make_api_call(f"/v1/forecast/{city}", method="GET")
        await self.gateway.memory.store_memory(f"forecast-{city}", {
            "text": f"forecast for {city}: {forecast['summary']}", "city": city,
        })
        answer = await self.gateway.process_cognitive_input({
            "type": "text",
            "content": f"What is the weather in {city}?",
            "context": {"external_source": "weather-bridge", "session_id": channel},
        })
        text = answer["cognitive_response"].get("text", "")
        receipt = await self.notifier.send(channel, text)
        return {"forecast": forecast, "answer": text, "delivered": receipt.get("ok", False)}
