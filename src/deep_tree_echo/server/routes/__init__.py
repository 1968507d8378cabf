"""The server's routers: health/metrics, memories and the WebSocket."""
