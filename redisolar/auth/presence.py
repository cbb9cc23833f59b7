"""Whether any API key exists, as one process remembers it (for ``AUTH_MODE=auto``).

``auto`` serves this machine without a key while the store holds no key, and behaves as ``writes``
once one exists. Reading the key registry (``EXISTS apikeys``, one slot) on every request without a
key cost a round trip each time, and on a cluster tied every such request to that slot's master: while
it failed over, every one was a 503.

Decisions:

- **"Keys exist" is remembered, "no key" is not.** Once a process has seen a key (the registry read,
  a presented key that is found, a key it created) it answers "keys exist" without reading the
  registry for :data:`RECHECK_SECONDS` (5 s), then reads it again in the next request's round trip.
  "No key" is read on every request, as before: remembering it would let a local client write
  without a key for seconds after the first key was created elsewhere. So keys are required at once
  when the first is created; after the last one is revoked, a process that had seen keys keeps
  requiring them for writes, and keeps reads open to other machines, for up to 5 s (a revocation in
  this process forgets at once).
- **A failed re-check keeps the last answer.** When the registry cannot be read (a failover, an
  unreachable node) and the process had seen keys, it keeps "keys exist" (and asks again after 5 s)
  instead of failing the request. A process that never saw a key does not guess: neither state is
  stricter in every way ("keys exist" refuses this machine's writes without a key but opens reads to
  every machine; "no key" refuses other machines everything), so its request fails as before (503,
  ``Retry-After``). That happens only before a process's first answer from the registry.
- Per process, in memory, no lock: the state is one bool and one time, set whole; a race between two
  threads costs at most one extra registry read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RECHECK_SECONDS = 5.0
"""How long a process answers "keys exist" from memory before reading the registry again."""


class KeyPresence:
    """One process's knowledge of whether any API key exists (see the module docstring)."""

    def __init__(self, recheck_seconds: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self.seen = False
        """Keys were seen to exist (and not seen absent since)."""
        self.checked = 0.0

    def must_ask(self) -> bool:
        """Whether the registry must be read: nothing seen yet, or seen longer ago than the recheck."""
        return not self.seen or self.clock() - self.checked >= self.recheck_seconds

    def learn(self, exists: bool) -> None:
        """What the registry (or a found key) just said."""
        self.seen = exists
        self.checked = self.clock()

    def keep(self) -> None:
        """The registry could not be read: keep "keys exist" for another recheck period."""
        self.checked = self.clock()

    def forget(self) -> None:
        """A key was revoked here: read the registry at the next request."""
        self.seen = False
