# ruff: noqa
# mypy: ignore-errors
"""The seed's example subclasses (integration-patterns.md sections 1-4), verbatim.

Only the import prefix changed (``aphrodite.`` -> ``deep_tree_echo.``) and the names they use
without importing (Dict, MessageToDict, ...) are imported here. The bases are ours, under
other names, so these subclasses are exactly the seed's code running against our classes.
"""

from abc import abstractmethod
from typing import Any, Callable, Dict, List, Optional

from google.protobuf.json_format import MessageToDict, ParseDict

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.adapters import DataAdapter
from deep_tree_echo.integration.database import DatabaseGateway, NoSQLAdapter, SQLAdapter
from deep_tree_echo.integration.event_driven import EventDrivenIntegration
from deep_tree_echo.integration.gateway import IntegrationGateway
from deep_tree_echo.integration.plugins import IntegrationPlugin


# -- 1. Gateway pattern ----------------------------------------------------------------------
class APIIntegrationGateway(IntegrationGateway):
    """Gateway for REST API integrations"""

    async def initialize(self):
        await self.connect_to_echo_system()
        self.setup_api_endpoints()

    async def process_external_request(self, request):
        # Transform external request to Echo format
        echo_request = self.transform_to_echo_format(request)

        # Process through Echo system
        result = await self.aar_gateway.process_cognitive_input(echo_request)

        # Transform Echo response to external format
        return self.transform_from_echo_format(result)

    def transform_to_echo_format(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Transform external request format to Echo internal format"""
        return {
            "type": request.get("message_type", "text"),
            "content": request.get("data", ""),
            "context": {
                "external_source": request.get("source", "api"),
                "timestamp": request.get("timestamp"),
                "session_id": request.get("session_id")
            }
        }

    def transform_from_echo_format(self, echo_response: Dict[str, Any]) -> Dict[str, Any]:
        """Transform Echo response to external format"""
        return {
            "success": echo_response.get("status") == "success",
            "data": echo_response.get("cognitive_response", {}),
            "metadata": {
                "processing_time": echo_response.get("processing_time"),
                "confidence": echo_response.get("confidence", 0.0)
            }
        }


# -- 2. Event-driven pattern -----------------------------------------------------------------
class WebSocketIntegration(EventDrivenIntegration):
    def __init__(self, websocket_manager):
        super().__init__()
        self.websocket_manager = websocket_manager
        self.setup_integration_handlers()

    def setup_integration_handlers(self):
        # Handle Echo system events and forward to WebSocket
        self.register_echo_handler("agent.message", self.forward_agent_message)
        self.register_echo_handler("memory.update", self.forward_memory_update)

        # Handle WebSocket events and forward to Echo
        self.register_external_handler("user.message", self.process_user_message)

    async def forward_agent_message(self, event_data):
        await self.websocket_manager.broadcast({
            "type": "agent_message",
            "agent_id": event_data.get("agent_id"),
            "message": event_data.get("message")
        })

    async def process_user_message(self, message_data):
        await self.emit_to_echo("user.input", {
            "content": message_data.get("message"),
            "user_id": message_data.get("user_id")
        })


# -- 3. Adapter pattern ----------------------------------------------------------------------
class JSONAdapter(DataAdapter):
    def to_echo_format(self, json_data: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "type": "json_input",
            "content": json_data,
            "metadata": {
                "format": "json",
                "schema_version": "1.0"
            }
        }

    def from_echo_format(self, echo_data: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "result": echo_data.get("cognitive_response", {}),
            "status": echo_data.get("status", "unknown"),
            "timestamp": echo_data.get("timestamp")
        }


class ProtocolBufferAdapter(DataAdapter):
    def __init__(self, proto_class):
        self.proto_class = proto_class

    def to_echo_format(self, proto_message) -> Dict[str, Any]:
        # Convert protobuf to dict
        message_dict = MessageToDict(proto_message)
        return {
            "type": "protobuf_input",
            "content": message_dict,
            "metadata": {
                "format": "protobuf",
                "message_type": proto_message.DESCRIPTOR.name
            }
        }

    def from_echo_format(self, echo_data: Dict[str, Any]):
        # Convert back to protobuf
        response = self.proto_class()
        ParseDict(echo_data.get("cognitive_response", {}), response)
        return response


# -- 4. Plugin pattern -----------------------------------------------------------------------
class DatabaseIntegrationPlugin(IntegrationPlugin):
    async def setup_integrations(self):
        # Setup database connections
        self.db_gateway = DatabaseGateway(self.config.get("database", {}))
        self.integrations.append(self.db_gateway)

        # Register adapters
        self.register_adapter("sql", SQLAdapter())
        self.register_adapter("nosql", NoSQLAdapter())

    async def query_database(self, query: str, format_type: str = "sql"):
        adapter = self.get_adapter(format_type)
        if not adapter:
            raise ValueError(f"No adapter found for format: {format_type}")

        # Transform query to Echo format
        echo_query = adapter.to_echo_format({"query": query})

        # Process through Echo system
        result = await self.aar_gateway.process_cognitive_input(echo_query)

        # Transform result back
        return adapter.from_echo_format(result)
