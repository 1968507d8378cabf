"""Source of the ``console-probe`` plugin the browser test installs into a throwaway dist-info.

It puts the process into a known state for the Health view: one circuit breaker in each
state (closed, open, half-open: an open breaker with a zero recovery timeout reads as
half-open, no clock involved) and an integration whose failures fire an alert. An input
whose text is ``trip the probe`` trips one more breaker and fires one more alert, so the
Events view can be shown a breaker transition and an alert as they happen.
"""

PLUGIN_SOURCE = '''
from deep_tree_echo.observability import monitor
from deep_tree_echo.plugins.base import BasePlugin
from deep_tree_echo.resilience import CircuitBreaker


def _tripped(name, recovery_timeout, bus):
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=recovery_timeout, name=name,
                             event_bus=bus)
    breaker.on_failure(breaker.try_acquire(), RuntimeError("probe failure"))
    return breaker


class ConsoleProbe(BasePlugin):
    name = "console-probe"
    version = "0.1.0"

    async def initialize(self, config=None, gateway=None):
        await super().initialize(config, gateway)
        bus = self.aar_gateway.event_bus
        self.breakers = [  # kept alive: the breaker registry holds weak references
            CircuitBreaker(name="probe-closed"),
            _tripped("probe-open", 3600.0, bus),
            _tripped("probe-half-open", 0.0, bus),
        ]
        for i in range(20):
            monitor.record_request("probe-api", i % 4 != 0, 0.002 * (i + 1))
        self.aar_gateway.event_bus.register("user.input", self._on_input)

    async def _on_input(self, data):
        if data.get("content") != "trip the probe":
            return
        self.breakers.append(_tripped("probe-tripped", 3600.0, self.aar_gateway.event_bus))
        for _ in range(12):
            monitor.record_request("probe-alerting", False, 0.001)
'''
