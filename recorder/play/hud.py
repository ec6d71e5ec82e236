"""The heads-up display drawn over the game: what is being recorded and how the writer keeps up.

`hud_lines(info)` is pure (text and colour per line); `Overlay` draws lines onto a surface and
caches rendered text, since most lines change a few times a second at most.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

WHITE, GREY, RED, YELLOW, GREEN = (235, 235, 235), (170, 170, 170), (255, 70, 60), \
    (255, 210, 60), (120, 220, 120)
READY, REC, PAUSED, SAVING = "ready", "rec", "paused", "saving"


@dataclass
class HudInfo:
    phase: str = READY
    episode: int = 0
    step: int = 0
    fps: float = 0.0
    target_fps: float = 0.0
    late: int = 0
    connected: bool = False
    backlog: int = 0  # messages not yet confirmed durable by the writer
    durable: int = 0  # frames the writer confirmed on disk
    gaps: int = 0  # frames dropped because the resend buffer was full
    discarded: int = 0
    notice: str = ""


def hud_lines(info: HudInfo) -> list[tuple[str, tuple[int, int, int]]]:
    head = {READY: ("READY", WHITE), REC: ("REC", RED), PAUSED: ("PAUSED", YELLOW),
            SAVING: ("SAVING", YELLOW)}[info.phase]
    lines = [(f"{head[0]}  episode {info.episode}  step {info.step}", head[1]),
             (f"fps {info.fps:4.1f} / {info.target_fps:g}  late {info.late}",
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
            centre: bool = False, dot: tuple[int, int, int] | None = None) -> None:
        """Draw `lines` ((text, colour) pairs) on a translucent dark box, with a round `dot`
        before the first line if given (the bundled font has no such glyph)."""
        rendered = [self.text(t, c) for t, c in lines]
        indent = self.line_height if dot else 0
        width = max(r.get_width() for r in rendered) + 12 + indent
        height = self.line_height * len(rendered) + 8
        if centre:
            sw, sh = surface.get_size()
            topleft = ((sw - width) // 2, (sh - height) // 2)
        backdrop = pygame.Surface((width, height), pygame.SRCALPHA)
        backdrop.fill((0, 0, 0, 170))
        surface.blit(backdrop, topleft)
        x, y = topleft[0] + 6, topleft[1] + 4
        if dot:
            radius = self.line_height // 3
            pygame.draw.circle(surface, dot, (x + radius, y + self.line_height // 2 - 1), radius)
        for i, r in enumerate(rendered):
            shift = (width - 12 - r.get_width()) // 2 if centre else indent if i == 0 else 0
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


def title_lines(overlay: Overlay, width: int, controls: list[str],
                agent: bool = False) -> list[tuple[str, tuple]]:
    head = "Press SPACE to start" if not agent else "Agent playing"
    return [(head, WHITE), ("", WHITE),
            *overlay.wrap(controls, width, GREY), ("", WHITE),
            *overlay.wrap(["P pause", "H HUD", "Backspace discard episode", "Esc save + quit"],
                          width, GREY)]
