"""The speed keys: `+` / `-` step the target frame rate through a ladder of factors of the
session's starting rate. Pure: no window, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field

# Factors of the starting rate, slowest first; the HUD shows the one in use (×0.5, ×1.5).
FACTORS = (0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
MIN_FPS, MAX_FPS = 1.0, 1000.0  # the range --fps accepts
MAX_CHANGES = 4096  # changes kept for the session's metadata (a SessionEnd carries them)


@dataclass
class Speed:
    """The target rate: `base_fps` times the factor chosen with the speed keys."""

    base_fps: float
    factors: tuple[float, ...] = field(init=False)
    index: int = field(init=False)

    def __post_init__(self) -> None:
        # Only the factors whose rate --fps would accept: at 1000 fps there is no faster.
        self.factors = tuple(f for f in FACTORS
                             if MIN_FPS <= self.base_fps * f <= MAX_FPS or f == 1.0)
        self.index = self.factors.index(1.0)

    @property
    def factor(self) -> float:
        return self.factors[self.index]

    @property
    def fps(self) -> float:
        """The target frames per second (rounded to 0.01)."""
        return self.base_fps if self.factor == 1.0 else round(self.base_fps * self.factor, 2)

    def step(self, direction: int) -> bool:
        """One step faster (+1) or slower (-1); False at either end of the ladder."""
        index = self.index + direction
        if not 0 <= index < len(self.factors):
            return False
        self.index = index
        return True

    def label(self) -> str:
        """"×1.5" — the factor as the HUD shows it."""
        return f"\u00d7{round(self.factor, 2):g}"


@dataclass
class SpeedLog:
    """The rate changes of a session, [episode, step, fps] each: made while the frame of
    `step` was on screen, the frames after it were paced at fps (SessionStart.fps holds the
    rate before the first)."""

    changes: list[list] = field(default_factory=list)

    def add(self, episode: int, step: int, fps: float) -> bool:
        """Note a change; changes at one step keep only the last. False when the log is full."""
        if self.changes and self.changes[-1][:2] == [episode, step]:
            self.changes[-1][2] = fps
            return True
        if len(self.changes) >= MAX_CHANGES:
            return False
        self.changes.append([episode, step, fps])
        return True
