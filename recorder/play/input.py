"""What the player is doing with the keyboard: one small object that only `process_event` changes.

The play loop asks once per frame for `frame_keys()`: every key held at some moment while that
frame was on screen (held now, or pressed and already released since the last frame), so a quick
tap between two frames still counts. Session commands (start, pause, HUD, discard, quit, faster,
slower) queue up in order and the loop takes them with `take_commands()`.
"""

from __future__ import annotations

import pygame

START, PAUSE, HUD, DISCARD, QUIT = "start", "pause", "hud", "discard", "quit"
FASTER, SLOWER = "faster", "slower"
COMMAND_KEYS = {pygame.K_SPACE: START, pygame.K_p: PAUSE, pygame.K_h: HUD,
                pygame.K_BACKSPACE: DISCARD, pygame.K_ESCAPE: QUIT,
                # `+` is Shift+`=` on most layouts: `=` counts as `+`
                pygame.K_PLUS: FASTER, pygame.K_EQUALS: FASTER, pygame.K_KP_PLUS: FASTER,
                pygame.K_MINUS: SLOWER, pygame.K_KP_MINUS: SLOWER}
_FOCUS_LOST = {getattr(pygame, "WINDOWFOCUSLOST", -1), getattr(pygame, "WINDOWMINIMIZED", -1)}


class InputState:
    def __init__(self) -> None:
        self.held: set[int] = set()
        self.tapped: set[int] = set()
        self.commands: list[str] = []

    def process_event(self, event: pygame.event.Event) -> None:
        """Update the state from one pygame event (others are ignored)."""
        if event.type == pygame.KEYDOWN:
            self.held.add(event.key)
            self.tapped.add(event.key)
            if event.key in COMMAND_KEYS:
                self.commands.append(COMMAND_KEYS[event.key])
        elif event.type == pygame.KEYUP:
            self.held.discard(event.key)
        elif event.type in (pygame.QUIT, getattr(pygame, "WINDOWCLOSE", pygame.QUIT)):
            self.commands.append(QUIT)
        elif event.type in _FOCUS_LOST:
            # Key-ups go to whichever window has the focus now: forget what we think is held.
            self.held.clear()

    def frame_keys(self) -> frozenset[int]:
        """Keys held at any moment since the previous call."""
        keys = frozenset(self.held | self.tapped)
        self.tapped.clear()
        return keys

    def take_commands(self) -> list[str]:
        commands, self.commands = self.commands, []
        return commands
