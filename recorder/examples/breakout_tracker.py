"""A Breakout agent that reads the picture: it moves the paddle under the ball, and serves
when no ball is in play. Use it as `--agent breakout-tracker` on any Breakout id.

It looks only at the frame (210 × 160 RGB): the paddle and the ball share one colour, the
paddle on rows 189-193 and the ball anywhere between the bricks and the paddle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PIECE = np.array([200, 72, 72], dtype=np.uint8)  # the paddle's and the ball's colour
BALL_ROWS = slice(93, 189)  # below the bricks, above the paddle
PADDLE_ROWS = slice(189, 194)
WALL = 8  # columns of wall on each side


class BreakoutTracker:
    """Follows the ball with the paddle (Discrete actions NOOP, FIRE, RIGHT, LEFT)."""

    def __init__(self, action_space: Any, env_id: str = ""):
        meanings = ["NOOP", "FIRE", "RIGHT", "LEFT"]  # Breakout's minimal action set
        if getattr(action_space, "n", None) != len(meanings):
            raise ValueError(f"breakout-tracker plays Breakout (4 actions), not {action_space}")
        self.noop, self.fire, self.right, self.left = range(4)
        self.steps_without_ball = 0

    def reset(self, seed: int) -> None:
        self.steps_without_ball = 0

    def act(self, observation: np.ndarray) -> int:
        ball = _columns(observation[BALL_ROWS])
        paddle = _columns(observation[PADDLE_ROWS])
        if ball is None:
            self.steps_without_ball += 1
            # Serve now and then (FIRE every step would be ignored while the ball is out).
            return self.fire if self.steps_without_ball % 8 == 1 else self.noop
        self.steps_without_ball = 0
        if paddle is None:
            return self.noop
        offset = ball - paddle
        if abs(offset) <= 3:
            return self.noop
        return self.right if offset > 0 else self.left


def _columns(band: np.ndarray) -> float | None:
    """The mean column of the piece-coloured pixels in `band` (walls excluded), or None."""
    inside = band[:, WALL:-WALL]
    _, xs = np.nonzero((inside == PIECE).all(axis=-1))
    return float(xs.mean()) + WALL if xs.size else None
