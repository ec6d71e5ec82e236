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
    seq: int  # first seq of the message
    last_seq: int  # a StepBatch covers seq..last_seq
    frames: list
    nbytes: int
    steps: int  # steps in the message
    slots: tuple = ()  # shared-memory slots it holds


class Outbox:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: deque[Entry] = deque()
        self.next_seq = 0
        self.acked_seq = -1
        self.cursor = 0  # index in `entries` of the next message to hand to the socket
        self.bytes = 0
        self.steps_durable = 0
        self.steps_dropped = 0
        self.open_gap: PendingGap | None = None

    def has_room(self, nbytes: int) -> bool:
        return self.bytes + nbytes <= self.max_bytes

    def add(self, frames: list, nbytes: int, steps: int = 0, count: int = 1,
            slots: tuple = ()) -> int:
        """Append a message covering `count` seqs from `next_seq`; returns its first seq."""
        seq = self.next_seq
        self.entries.append(Entry(seq, seq + count - 1, frames, nbytes, steps, slots))
        self.next_seq += count
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

    def ack(self, seq: int) -> list[int]:
        """Everything up to `seq` is durable: forget it. Returns the shared-memory slots that
        became free."""
        if seq <= self.acked_seq or seq >= self.next_seq:
            return []
        freed: list[int] = []
        while self.entries and self.entries[0].last_seq <= seq:
            entry = self.entries.popleft()
            self.bytes -= entry.nbytes
            self.steps_durable += entry.steps
            freed.extend(entry.slots)
            self.cursor = max(0, self.cursor - 1)
        self.acked_seq = seq
        return freed

    def rewind(self, seq: int) -> None:
        """Send again from the message holding `seq` (never before what is durable; never
        skipping what was not sent yet)."""
        seq = max(seq, self.acked_seq + 1)
        lo, hi = 0, len(self.entries)  # entries cover consecutive seqs: binary search
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entries[mid].last_seq < seq:
                lo = mid + 1
            else:
                hi = mid
        self.cursor = min(self.cursor, lo)

    def next_unsent(self) -> Entry | None:
        return self.entries[self.cursor] if self.cursor < len(self.entries) else None

    def mark_sent(self) -> None:
        self.cursor += 1

    @property
    def unacked(self) -> int:
        return len(self.entries)

    @property
    def in_flight(self) -> bool:
        """Something was handed to the socket and not yet acknowledged."""
        return self.cursor > 0
