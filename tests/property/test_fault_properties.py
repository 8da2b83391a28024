"""Property suite for callback faults (issue 9) in trees with supervision policies.

The trees of ``test_policy_properties`` plus: runs whose ``process_start`` raises
synchronously or is not a coroutine function, runs ending in ``GeneratorExit``,
a custom ``BaseException`` or a ``CancelledError`` nobody asked for, handles whose
``control_nowait`` / ``shutdown`` / ``reload`` raise (an ``Exception``,
``CancelledError``, ``GeneratorExit`` or a custom ``BaseException``;
synchronously or from the awaitable they return), and an observer whose
``on_event`` or ``wants`` raises one of those, on every event or on a drawn set
of event types. ``KeyboardInterrupt`` / ``SystemExit`` are not drawn: they
propagate out of the loop by design.

The invariants are those of ``test_policy_properties``; in particular the tree
ends in a defined state within its bound, no task is left, ``wait_stopped()``
returns, the manager can be started again, and the outcome is the same with
and without (faulty) observers.
"""

from __future__ import annotations

from hypothesis import given

from ._policy_model import Scenario, scenarios
from .test_policy_properties import check_scenario


@given(sc=scenarios(faults=True))
def test_trees_with_callback_faults_keep_the_invariants(sc: Scenario) -> None:
    check_scenario(sc)
