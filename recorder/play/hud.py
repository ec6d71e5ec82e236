"""The heads-up display: what is being recorded and how the writer keeps up, in a bar below the
game picture (never over the game's own score or status area).

`hud_lines(info)` is pure (text and colour per line); `HudBar` lays the lines out in a bar the
window is made tall (and, at ×1, wide) enough for; `Overlay` draws lines onto a surface and
caches rendered text, since most lines change a few times a second at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pygame

WHITE, GREY, RED, YELLOW, GREEN = (235, 235, 235), (170, 170, 170), (255, 70, 60), \
    (255, 210, 60), (120, 220, 120)
READY, REC, PAUSED, SAVING, BREAK = "ready", "rec", "paused", "saving", "break"
MAX_LINES = 6  # the most lines hud_lines gives
# The widest line the HUD is expected to show: its width sets the bar's columns.
_WIDEST = "writer NOT ANSWERING  backlog 99999"


@dataclass
class HudInfo:
    phase: str = READY
    episode: int = 0
    step: int = 0
    fps: float = 0.0
    target_fps: float = 0.0
    speed: str = ""  # the speed keys' factor of the starting rate ("×1.5")
    late: int = 0
    connected: bool = False
    backlog: int = 0  # messages not yet confirmed durable by the writer
    durable: int = 0  # frames the writer confirmed on disk
    gaps: int = 0  # frames dropped because the resend buffer was full
    discarded: int = 0
    notice: str = ""


def hud_lines(info: HudInfo) -> list[tuple[str, tuple[int, int, int]]]:
    head = {READY: ("READY", WHITE), REC: ("REC", RED), PAUSED: ("PAUSED", YELLOW),
            SAVING: ("SAVING", YELLOW), BREAK: ("BREAK", YELLOW)}[info.phase]
    speed = f" {info.speed}" if info.speed else ""
    lines = [(f"{head[0]}  episode {info.episode}  step {info.step}", head[1]),
             (f"fps {info.fps:4.1f} / {info.target_fps:.4g}{speed}  late {info.late}",
              YELLOW if info.late and info.fps < 0.95 * info.target_fps else WHITE),
             (f"writer {'connected' if info.connected else 'NOT ANSWERING'}  "
              f"backlog {info.backlog}", WHITE if info.connected else RED),
             (f"durable {info.durable}  gaps {info.gaps}", RED if info.gaps else WHITE)]
    if info.discarded:
        lines.append((f"discarded episodes {info.discarded}", GREY))
    if info.notice:
        lines.append((info.notice, GREEN))
    return lines


class Overlay:
    def __init__(self, size: int = 16):
        pygame.font.init()
        self.font = pygame.font.Font(None, size + 4)  # pygame's bundled font, a bit small
        self.line_height = self.font.get_linesize()
        self._cache: dict[tuple, pygame.Surface] = {}

    def text(self, text: str, colour: tuple[int, int, int]) -> pygame.Surface:
        key = (text, colour)
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = self.font.render(text, True, colour)
        return self._cache[key]

    def box(self, surface: pygame.Surface, lines, topleft: tuple[int, int] = (4, 4),
            centre: bool = False) -> None:
        """Draw `lines` ((text, colour) pairs) on a translucent dark box (centred lines in the
        middle of `surface` with `centre`)."""
        rendered = [self.text(t, c) for t, c in lines]
        width = max(r.get_width() for r in rendered) + 12
        height = self.line_height * len(rendered) + 8
        if centre:
            sw, sh = surface.get_size()
            topleft = ((sw - width) // 2, (sh - height) // 2)
        backdrop = pygame.Surface((width, height), pygame.SRCALPHA)
        backdrop.fill((0, 0, 0, 170))
        surface.blit(backdrop, topleft)
        x, y = topleft[0] + 6, topleft[1] + 4
        for r in rendered:
            shift = (width - 12 - r.get_width()) // 2 if centre else 0
            surface.blit(r, (x + shift, y))
            y += self.line_height

    def wrap(self, words: list[str], width: int, colour) -> list[tuple[str, tuple]]:
        """Join `words` into lines no wider than `width` pixels."""
        lines, current = [], ""
        for word in words:
            candidate = f"{current}   {word}" if current else word
            if current and self.font.size(candidate)[0] > width:
                lines.append((current, colour))
                current = word
            else:
                current = candidate
        if current:
            lines.append((current, colour))
        return lines


class HudBar:
    """Where the HUD goes: a bar under the picture, in one column (narrow windows) or two. The
    window is at least one column wide, so the HUD reads the same at ×1 as at ×2."""

    def __init__(self, overlay: Overlay, picture: tuple[int, int]):
        self.overlay = overlay
        self.column_width = overlay.font.size(_WIDEST)[0] + 24
        self.width = max(picture[0], self.column_width)
        self.columns = 2 if self.width >= 2 * self.column_width else 1
        self.rows = math.ceil(MAX_LINES / self.columns)
        self.top = picture[1]
        self.height = self.rows * overlay.line_height + 8
        self.picture_left = (self.width - picture[0]) // 2  # the picture is centred above it

    @property
    def window_size(self) -> tuple[int, int]:
        return self.width, self.top + self.height

    def draw(self, surface: pygame.Surface, lines, dot: tuple[int, int, int] | None = None,
             visible: bool = True) -> None:
        """Clear the bar, then (if `visible`) draw `lines` down the columns, with a round `dot`
        before the first line."""
        surface.fill((16, 16, 16), pygame.Rect(0, self.top, self.width, self.height))
        if not visible:
            return
        height = self.overlay.line_height
        for i, (text, colour) in enumerate(lines[:self.rows * self.columns]):
            column, row = divmod(i, self.rows)
            x, y = 8 + column * self.column_width, self.top + 4 + row * height
            if i == 0 and dot:
                radius = height // 3
                pygame.draw.circle(surface, dot, (x + radius, y + height // 2 - 1), radius)
                x += height
            surface.blit(self.overlay.text(text, colour), (x, y))


def title_lines(overlay: Overlay, width: int, controls: list[str],
                agent: bool = False) -> list[tuple[str, tuple]]:
    head = "Press SPACE to start" if not agent else "Agent playing"
    return [(head, WHITE), ("", WHITE),
            *overlay.wrap(controls, width, GREY), ("", WHITE),
            *overlay.wrap(["P pause", "+/- speed", "H HUD", "Backspace discard episode",
                           "Esc save + quit"], width, GREY)]


def break_lines(episode: int, seconds_left: float | None) -> list[tuple[str, tuple]]:
    """The box shown between episodes: what comes next, and when (None: when Space is
    pressed)."""
    when = ("Press SPACE to start" if seconds_left is None
            else f"starts in {max(1, math.ceil(seconds_left))} s  (SPACE: now)")
    return [(f"Next: episode {episode}", YELLOW), (when, WHITE),
            ("nothing is recorded meanwhile", GREY)]
