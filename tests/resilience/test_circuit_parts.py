"""The circuit breaker's small parts: state values and the Permit it hands out (exact values)."""

from __future__ import annotations

from deep_tree_echo.resilience import CircuitBreaker, CircuitState, Permit
from deep_tree_echo.resilience._circuit_state import BY_VALUE


def test_a_permit_is_a_plain_local_call_permit_by_default() -> None:
    permit = Permit(7)
    assert permit.generation == 7
    assert permit.trial is False
    assert permit.shared is False
    assert permit.done is False


def test_a_permit_keeps_the_flags_it_was_given() -> None:
    permit = Permit(2, trial=True, shared=True)
    assert (permit.generation, permit.trial, permit.shared, permit.done) == (2, True, True, False)
    assert repr(permit) == "Permit(generation=2, trial=True, shared=True)"
    assert repr(Permit(0)) == "Permit(generation=0, trial=False, shared=False)"


def test_states_are_found_by_their_wire_value() -> None:
    assert BY_VALUE == {
        "closed": CircuitState.CLOSED,
        "open": CircuitState.OPEN,
        "half_open": CircuitState.HALF_OPEN,
    }


def test_a_fresh_breaker_hands_out_an_unfinished_closed_permit() -> None:
    permit = CircuitBreaker(name="parts").try_acquire()
    assert permit is not None
    assert (permit.generation, permit.trial, permit.shared, permit.done) == (0, False, False, False)
