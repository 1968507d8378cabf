"""HTTP-level mocks of external APIs, built on respx.

Integrations that call real URLs through httpx (``ResilientAPIIntegration`` included) are
tested against an :class:`HTTPMock` without a network: requests to mocked routes get the
declared responses, any other request fails loudly, and every call is recorded.

    with HTTPMock("https://api.example.com", {"POST /v1/x": {"ok": True}}) as api:
        ...  # code under test calls https://api.example.com/v1/x through httpx
    api.assert_called("POST /v1/x", times=1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeAlias

import httpx
import respx

from deep_tree_echo.testing.errors import MockExhaustedError, MockVerificationError

#: What a route may answer with: a JSON object (status 200), an ``httpx.Response``, a
#: status code, ``(status, json_body)``, a ``str``/``bytes`` body, an exception (instance or
#: class) to raise, a callable ``(request) -> httpx.Response`` or a list of these, used in
#: order, one per request.
ResponseSpec: TypeAlias = Any

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def parse_route_key(key: str) -> tuple[str | None, str]:
    """``"POST /v1/x"`` -> ``("POST", "/v1/x")``; ``"/v1/x"`` or ``"ANY /v1/x"`` match any
    method."""
    parts = key.split(None, 1)
    if len(parts) == 2:
        method, path = parts[0].upper(), parts[1].strip()
        if method == "ANY":
            return None, path
        if method not in _METHODS:
            raise ValueError(f"route {key!r}: unknown HTTP method {parts[0]!r}")
    elif len(parts) == 1 and parts[0].startswith("/"):
        method, path = None, parts[0]
    else:
        raise ValueError(f"route {key!r}: expected 'METHOD /path'")
    if not path.startswith("/"):
        raise ValueError(f"route {key!r}: the path must start with '/'")
    return method, path


def to_response(spec: ResponseSpec) -> httpx.Response:
    """Turn a plain response spec (not an exception, callable or list) into a response."""
    if isinstance(spec, httpx.Response):
        # a fresh copy per call, so one declared response can be read many times
        return httpx.Response(
            spec.status_code, headers=spec.headers, content=spec.content
        )
    if spec is None:
        return httpx.Response(204)
    if isinstance(spec, bool):
        raise TypeError(f"cannot use {spec!r} as a mocked response")
    if isinstance(spec, int):
        return httpx.Response(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], int):
        status, body = spec
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)
    if isinstance(spec, str):
        return httpx.Response(200, text=spec)
    if isinstance(spec, bytes):
        return httpx.Response(200, content=spec)
    if isinstance(spec, Mapping):
        return httpx.Response(200, json=dict(spec))
    raise TypeError(
        f"cannot use {type(spec).__name__} as a mocked response; use a dict, httpx.Response, "
        "status code, (status, body), str, bytes, exception, callable or a list of these"
    )


def _is_exception(spec: Any) -> bool:
    return isinstance(spec, BaseException) or (
        isinstance(spec, type) and issubclass(spec, BaseException)
    )


def _raise(spec: BaseException | type[BaseException], request: httpx.Request) -> None:
    if isinstance(spec, type):
        if issubclass(spec, httpx.RequestError):
            raise spec("mocked error", request=request)
        raise spec()
    raise spec


class _Sequence:
    """A side effect answering with the next spec of a list on each request."""

    def __init__(self, key: str, specs: Sequence[ResponseSpec]) -> None:
        self.key = key
        self.specs = list(specs)
        self.index = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.index >= len(self.specs):
            raise MockExhaustedError(
                f"{self.key}: all {len(self.specs)} mocked responses were used; "
                f"request #{self.index + 1} has none",
                route=self.key,
            )
        spec = self.specs[self.index]
        self.index += 1
        if _is_exception(spec):
            _raise(spec, request)
        if callable(spec) and not isinstance(spec, httpx.Response):
            result = spec(request)
            return result if isinstance(result, httpx.Response) else to_response(result)
        return to_response(spec)


class _Callable:
    """A side effect calling a user function; plain return values become responses."""

    def __init__(self, func: Callable[[httpx.Request], Any]) -> None:
        self.func = func

    def __call__(self, request: httpx.Request) -> httpx.Response:
        result = self.func(request)
        return result if isinstance(result, httpx.Response) else to_response(result)


class HTTPMock(respx.MockRouter):
    """A respx router for one external API at ``base_url``, with named routes.

    Routes are named by their key (``"POST /v1/x"``), so ``mock["POST /v1/x"]`` is the respx
    :class:`~respx.Route` with ``.called``, ``.call_count`` and ``.calls``. Use it as a (sync
    or async) context manager or decorator; requests that match no route raise instead of
    reaching the network. Calls stay recorded after the block exits, for assertions.
    With ``assert_all_called=True`` leaving the block fails if a route was never called.
    """

    def __init__(
        self,
        base_url: str,
        routes: Mapping[str, ResponseSpec] | None = None,
        *,
        assert_all_called: bool = False,
        assert_all_mocked: bool = True,
    ) -> None:
        super().__init__(
            base_url=base_url,
            assert_all_called=assert_all_called,
            assert_all_mocked=assert_all_mocked,
        )
        self.base_url = base_url
        #: whether every declared route must be called (checked on exit and by verify)
        self.strict = assert_all_called
        self.active = False
        for key, spec in (routes or {}).items():
            self.add_route(key, spec)

    # routes ------------------------------------------------------------------------------
    def add_route(self, key: str, response: ResponseSpec) -> respx.Route:
        """Declare (or replace) the route ``key`` answering with ``response``."""
        method, path = parse_route_key(key)
        lookups: dict[str, Any] = {"path": path}
        if method is not None:
            lookups["method"] = method
        name = self._name(key)
        route = self.route(name=name, **lookups)
        if isinstance(response, list):
            route.mock(side_effect=_Sequence(name, response))
        elif _is_exception(response):
            route.mock(side_effect=response)
        elif callable(response) and not isinstance(response, httpx.Response):
            route.mock(side_effect=_Callable(response))
        else:
            to_response(response)  # validate now, not at request time
            route.mock(side_effect=lambda request, _spec=response: to_response(_spec))
        return route

    @staticmethod
    def _name(key: str) -> str:
        method, path = parse_route_key(key)
        return f"{method or 'ANY'} {path}"

    def __getitem__(self, key: str) -> respx.Route:
        try:
            return super().__getitem__(self._name(key))
        except KeyError:
            raise KeyError(f"no mocked route {key!r}; declared: {self.route_names()}") from None

    def route_names(self) -> list[str]:
        """The declared route keys, in declaration order."""
        return [route.name for route in self.routes if route.name is not None]

    # assertions --------------------------------------------------------------------------
    def requests(self, key: str) -> list[httpx.Request]:
        """The requests the route ``key`` received, oldest first."""
        return [call.request for call in self[key].calls]

    def json_bodies(self, key: str) -> list[Any]:
        """The JSON bodies the route ``key`` received, oldest first."""
        return [json.loads(request.content or b"null") for request in self.requests(key)]

    def assert_called(self, key: str, times: int | None = None) -> None:
        """Fail unless the route ``key`` was called (exactly ``times`` times, if given)."""
        count = self[key].call_count
        if times is None and count == 0:
            raise MockVerificationError(f"{self.base_url}: {key} was never called", route=key)
        if times is not None and count != times:
            raise MockVerificationError(
                f"{self.base_url}: {key} was called {count} time(s), expected {times}",
                route=key,
            )

    def assert_not_called(self, key: str) -> None:
        """Fail if the route ``key`` was called."""
        self.assert_called(key, times=0)

    def unused_routes(self) -> list[str]:
        """Names of the declared routes that were never called."""
        return [route.name or repr(route.pattern) for route in self.routes if not route.called]

    def verification_errors(self) -> list[str]:
        """Why :meth:`assert_all_called` would fail (empty when it passes)."""
        return [f"{self.base_url}: {name} was declared but never called"
                for name in self.unused_routes()]

    def assert_all_called(self) -> None:
        """Fail naming every declared route that was never called."""
        errors = self.verification_errors()
        if errors:
            raise MockVerificationError("; ".join(errors))

    # activation --------------------------------------------------------------------------
    def start(self) -> None:
        """Start intercepting httpx requests."""
        super().start()
        self.active = True

    def stop(self, clear: bool = False, reset: bool = False, quiet: bool = False) -> None:
        """Stop intercepting. Routes and recorded calls are kept unless asked otherwise."""
        self.active = False
        super().stop(clear=clear, reset=reset, quiet=quiet)

    def __enter__(self) -> HTTPMock:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.stop(quiet=exc_type is not None)

    async def __aenter__(self) -> HTTPMock:
        return self.__enter__()

    async def __aexit__(self, *args: Any) -> None:
        self.__exit__(*args)


__all__ = ["HTTPMock", "ResponseSpec", "parse_route_key", "to_response"]
