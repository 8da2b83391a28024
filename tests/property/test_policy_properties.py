"""Property suite for the supervision policies (issue 11).

Random trees draw strategies (ONE_FOR_ONE / ONE_FOR_ALL / REST_FOR_ONE), restart
types, intensities (``max_restarts`` 0..4 within a short or an out-of-reach
window), zero and small backoffs, ``wait_ready`` children that signal early,
late or never (with a small ``ready_timeout``), ordered managers, significant
children and per-child ``shutdown_timeout``; children run, return, fail, hang
until asked to stop or ignore the request until cancelled, a different script
per run. See ``_policy_model`` for the draws and the invariants:

* the tree ends within its bound (shutdown time + root grace + cancel timeout),
  on a virtual clock, so the bound is exact;
* the right children restart: TEMPORARY never, nothing when ``max_restarts=0``,
  a TRANSIENT child only after a failure (or as a member of a group restart),
  ONE_FOR_ONE restarts the trigger alone, a group restart includes every
  running non-temporary child (after the trigger, for REST_FOR_ONE), every
  ``ProcessRestarted`` follows a decision, no decision during a shutdown;
* the intensity: never more than ``max_restarts`` decisions within ``within``;
* ordered managers: a child starts only after every earlier sibling started and
  every earlier ``wait_ready`` sibling is ready or ended; when a child is asked
  to stop, no later sibling is still running (reverse stop order);
* exactly one terminal event per started run, events in a legal order;
* the Prometheus counters agree with the events, per child;
* no task left, ``wait_stopped()`` returns, the manager starts again;
* the outcome is a failure of a root child (the very object) or the root's
  intensity error;
* the same scenario without observers behaves the same: the same outcome, every
  run of every child in the same order, at the same (virtual) times.

The bugs these suites found have minimal reproducers in
``test_policy_regressions.py``. Default profile: 100 examples per test;
``--hypothesis-profile=long``: 3,000.
"""

from __future__ import annotations

from hypothesis import event, given

from procman import ReadyTimeoutError
from procman.events import ProcessFailed, ProcessReady, ProcessStopTimedOut, RestartRequested

from ._policy_model import (
    Outcome,
    Scenario,
    check_events,
    check_log,
    check_metrics,
    check_outcome,
    check_same_behaviour,
    run_scenario,
    scenarios,
)
from ._vclock import run_virtual


def check_scenario(sc: Scenario) -> None:
    observed = run_virtual(run_scenario(sc, observed=True))
    bare = run_virtual(run_scenario(sc, observed=False))
    check_outcome(sc, observed)
    check_log(sc, observed)
    check_events(sc, observed)
    check_metrics(observed)
    check_outcome(sc, bare)
    check_log(sc, bare)
    check_same_behaviour(observed, bare)
    describe(observed)


def describe(out: Outcome) -> None:
    """What the example exercised (``--hypothesis-show-statistics``)."""
    event(f"outcome: {out.error_type.__name__ if out.error_type else None}")
    decisions = [e for e in out.events if isinstance(e, RestartRequested)]
    event(f"restart decisions: {min(len(decisions), 5)}{'+' if len(decisions) >= 5 else ''}")
    for strategy in sorted({e.strategy for e in decisions}):
        event(f"restarted by {strategy}")
    if any(isinstance(e, ProcessReady) for e in out.events):
        event("a child signalled readiness")
    if any(
        isinstance(e, ProcessFailed) and isinstance(e.exception, ReadyTimeoutError)
        for e in out.events
    ):
        event("a ready_timeout expired")
    if any(isinstance(e, ProcessStopTimedOut) for e in out.events):
        event("a child was force-cancelled")


@given(sc=scenarios(faults=False))
def test_policy_trees_keep_the_invariants(sc: Scenario) -> None:
    check_scenario(sc)
