"""The one wait primitive: a deadline, a poll interval and the last state seen.

Every wait in the suite goes through :func:`wait_until`. On timeout it raises
:class:`WaitTimeout` whose message names what was awaited and the last state
observed, so a failed bring-up or check says *why* it gave up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Default timeouts per operation type, in seconds. Callers pick one by name so the
# budget for a kind of wait is set in one place (cf. chainsaw's per-operation table).
TIMEOUTS: dict[str, float] = {
    "apply": 30.0,
    "crd": 60.0,
    "rollout": 600.0,
    "pod-ready": 300.0,
    "certificate": 180.0,
    "http": 60.0,
    "stream-event": 15.0,
    "sidekiq-job": 60.0,
    "mail": 60.0,
    "federation": 90.0,
    "push": 60.0,
    "restart": 600.0,
    "cleanup": 120.0,
    "peer-start": 30.0,
}


@dataclass(frozen=True)
class Poll(Generic[T]):
    """What a condition returns: whether it is met, the value, and a description."""

    done: bool
    value: T | None = None
    state: str = ""


class WaitTimeout(AssertionError):
    """A bounded wait ran out. ``last_state`` is the last observed state."""

    def __init__(self, what: str, timeout: float, last_state: str, polls: int) -> None:
        self.what = what
        self.timeout = timeout
        self.last_state = last_state
        self.polls = polls
        super().__init__(
            f"timed out after {timeout:.0f}s waiting for {what} "
            f"({polls} poll(s)); last state: {self.last_seen}"
        )

    @property
    def last_seen(self) -> str:
        """The last state observed, for messages."""
        return self.last_state or "nothing observed"


def wait_until(
    condition: Callable[[], Poll[T] | bool],
    *,
    what: str,
    timeout: float | str,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
    describe_error: Callable[[BaseException], str] = lambda e: f"{type(e).__name__}: {e}",
    retry_on: tuple[type[BaseException], ...] = (),
) -> T | None:
    """Poll ``condition`` until it reports done or ``timeout`` seconds pass.

    ``condition`` returns a :class:`Poll` (or a plain bool). Exceptions listed in
    ``retry_on`` count as "not yet" and their text becomes the last state.
    ``timeout`` may be a number or a key of :data:`TIMEOUTS`.
    """
    budget = TIMEOUTS[timeout] if isinstance(timeout, str) else float(timeout)
    if budget <= 0:
        raise ValueError("timeout must be positive")
    deadline = clock() + budget
    last_state = ""
    polls = 0
    while True:
        polls += 1
        try:
            outcome: Any = condition()
        except retry_on as exc:
            outcome = Poll(False, state=describe_error(exc))
        poll = outcome if isinstance(outcome, Poll) else Poll(bool(outcome), outcome)
        if poll.state:
            last_state = poll.state
        if poll.done:
            return poll.value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(what, budget, last_state, polls)
        sleep(min(interval, remaining))
