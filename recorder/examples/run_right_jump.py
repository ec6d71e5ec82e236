"""A Stable-Retro agent for side-scrolling platformers: hold RIGHT and jump every so often.
Use it as `--agent run-right-jump` on a game with MultiBinary buttons (Mario, Sonic, ...;
on Airstriker it flies right and fires).

The jump button is the first of A, B, C that the console has; the jump is held for `hold`
steps of every `period`, long enough for a full jump in most games.
"""

from __future__ import annotations

from typing import Any

import numpy as np

JUMP_BUTTONS = ("A", "B", "C")


class RunRightJump:
    """Holds RIGHT; holds the jump button for `hold` of every `period` steps."""

    def __init__(self, action_space: Any, env_id: str = "", *, period: int = 40,
                 hold: int = 12):
        buttons = _buttons_of(env_id)
        n = getattr(action_space, "n", None)
        if not isinstance(n, int) or len(buttons) != n:
            raise ValueError(f"run-right-jump needs a Stable-Retro game with MultiBinary buttons, "
                             f"not {action_space}")
        self.action = np.zeros(n, dtype=np.int8)
        self.right = buttons.index("RIGHT")
        self.jump = next(buttons.index(b) for b in JUMP_BUTTONS if b in buttons)
        self.period, self.hold = period, hold
        self.step = 0

    def reset(self, seed: int) -> None:
        self.step = 0

    def act(self, observation: Any) -> np.ndarray:
        action = self.action.copy()
        action[self.right] = 1
        action[self.jump] = int(self.step % self.period < self.hold)
        self.step += 1
        return action


def _buttons_of(env_id: str) -> list[str]:
    """The console's buttons in action order (from Stable-Retro's data for the game)."""
    import stable_retro as retro

    extension = "." + retro.data.get_romfile_path(env_id).rsplit(".", 1)[-1]
    system = retro.data.EMU_EXTENSIONS[extension]
    return [b or "" for b in retro.data.EMU_INFO[system]["buttons"]]
