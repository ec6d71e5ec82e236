"""The recorder's resend buffer: every message stays here, in seq order, until the writer says it
is durable. Pure bookkeeping (no sockets), so its rules are easy to test.

Steps are admitted only while the buffer holds fewer than `max_bytes`; a refused step is counted
in an open Gap, which is sent as its own message before the next admitted one, so the hole is
explicit in the data. Control messages (episode ends, gaps, session end) are always admitted:
there are few of them, and losing one would lose an episode's boundaries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class PendingGap:
    episode: int
    first_step: int
    last_step: int
    count: int


@dataclass
class Entry:
    seq: int
    frames: list
    nbytes: int
    steps: int  # 1 for a Step, else 0


class Outbox:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: deque[Entry] = deque()
        self.next_seq = 0
        self.acked_seq = -1
        self.cursor = 0  # seq of the next entry to hand to the socket
        self.bytes = 0
        self.steps_durable = 0
        self.steps_dropped = 0
        self.open_gap: PendingGap | None = None

    def has_room(self, nbytes: int) -> bool:
        return self.bytes + nbytes <= self.max_bytes

    def add(self, frames: list, nbytes: int, steps: int = 0) -> int:
        """Append a message (its seq must be `next_seq`) and return that seq."""
        seq = self.next_seq
        self.entries.append(Entry(seq, frames, nbytes, steps))
        self.next_seq += 1
        self.bytes += nbytes
        return seq

    def drop_step(self, episode: int, step: int) -> PendingGap | None:
        """Count a refused step. Returns a finished gap of another episode to send first."""
        self.steps_dropped += 1
        finished = None
        gap = self.open_gap
        if gap is not None and gap.episode != episode:
            finished, gap = gap, None
        if gap is None:
            self.open_gap = PendingGap(episode, step, step, 1)
        else:
            gap.last_step, gap.count = step, gap.count + 1
        return finished

    def take_gap(self) -> PendingGap | None:
        gap, self.open_gap = self.open_gap, None
        return gap

    def ack(self, seq: int) -> None:
        """Everything up to `seq` is durable: forget it."""
        if seq <= self.acked_seq or seq >= self.next_seq:
            return
        while self.entries and self.entries[0].seq <= seq:
            entry = self.entries.popleft()
            self.bytes -= entry.nbytes
            self.steps_durable += entry.steps
        self.acked_seq = seq
        self.cursor = max(self.cursor, seq + 1)

    def rewind(self, seq: int) -> None:
        """Send again from `seq` (never before what is already durable)."""
        self.cursor = min(max(seq, self.acked_seq + 1), self.next_seq)

    def next_unsent(self) -> Entry | None:
        if not self.entries or self.cursor >= self.next_seq:
            return None
        return self.entries[self.cursor - self.entries[0].seq]

    def mark_sent(self) -> None:
        self.cursor += 1

    @property
    def unacked(self) -> int:
        return len(self.entries)

    @property
    def in_flight(self) -> bool:
        """Something was handed to the socket and not yet acknowledged."""
        return self.cursor > self.acked_seq + 1
