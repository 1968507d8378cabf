"""Integration monitoring, alerting and Prometheus metrics.

Note: the package attribute ``monitor`` is the default :class:`IntegrationMonitor`
instance; the module that defines it is ``deep_tree_echo.observability.integration_monitor``
(import names from it with ``from deep_tree_echo.observability.integration_monitor import ...``).
"""

from __future__ import annotations

from deep_tree_echo.observability.alerts import (
    Alert,
    AlertSink,
    LoggingAlertSink,
    WebhookAlertSink,
)
from deep_tree_echo.observability.integration_monitor import (
    ALERT_EVENT,
    IntegrationMetrics,
    IntegrationMonitor,
    monitor,
    monitored_integration_call,
)
from deep_tree_echo.observability.prometheus import (
    EchoCollector,
    EchoMetrics,
    HttpMetrics,
    PrometheusMiddleware,
    render_latest,
)
from deep_tree_echo.observability.routing import EventBusAlertSink, attach_monitor

__all__ = [
    "ALERT_EVENT",
    "Alert",
    "AlertSink",
    "EchoCollector",
    "EchoMetrics",
    "EventBusAlertSink",
    "HttpMetrics",
    "IntegrationMetrics",
    "IntegrationMonitor",
    "LoggingAlertSink",
    "PrometheusMiddleware",
    "WebhookAlertSink",
    "attach_monitor",
    "monitor",
    "monitored_integration_call",
    "render_latest",
]
