"""Held controls → a legal action: the rules every platform's key resolver shares. Pure.

When a game has no action for the whole combination held, the nearest legal one is used: the
action with the most of the held controls, in the platform's priority order. Opposite
directions held together cancel out. Nothing a player can press makes an illegal action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

OPPOSITES = (
    ("UP", "DOWN"), ("LEFT", "RIGHT"), ("MOVE_LEFT", "MOVE_RIGHT"), ("TURN_LEFT", "TURN_RIGHT"),
    ("MOVE_FORWARD", "MOVE_BACKWARD"), ("LOOK_UP", "LOOK_DOWN"), ("MOVE_UP", "MOVE_DOWN"),
)


def cancel_opposites(controls: Iterable[str],
                     pairs: Iterable[tuple[str, str]] = OPPOSITES) -> frozenset[str]:
    held = set(controls)
    for a, b in pairs:
        if a in held and b in held:
            held -= {a, b}
    return frozenset(held)


def nearest(wanted: frozenset[str], options: Sequence[frozenset[str]],
            priority: Sequence[str]) -> int:
    """Index of the option that is a subset of `wanted` with the most controls; ties go to the
    control earliest in `priority`, then to the first option (NOOP when nothing fits)."""
    rank = {c: i for i, c in enumerate(priority)}

    def score(i: int) -> tuple:
        option = options[i]
        if not option <= wanted:
            return (-1,)
        ranks = sorted(rank.get(c, len(rank)) for c in option)
        return (len(option), tuple(-r for r in ranks), -i)

    return max(range(len(options)), key=score)
