"""`gymrec-replay --render`: a pygame window showing recorded | replayed | difference at the
recorded FPS. Esc or closing the window stops the replay; space pauses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recorder.replay.images import pixel_difference, side_by_side

MIN_WIDTH = 720  # small frames (Atari, 160 wide) are scaled up to at least this window width


@dataclass
class ViewerInput:
    """What the person asked for; `process_event` only updates it."""

    quit: bool = False
    paused: bool = False

    def process_event(self, event) -> None:
        import pygame

        if event.type == pygame.QUIT:
            self.quit = True
        elif event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE:
            self.quit = True
        elif event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
            self.paused = not self.paused


def window_scale(panel_width: int) -> int:
    """An integer scale that makes three panels at least MIN_WIDTH wide."""
    return max(1, -(-MIN_WIDTH // (3 * panel_width)))


class PygameViewer:
    """Opens its window on the first frame; `close()` may be called twice."""

    def __init__(self, fps: float, title: str):
        import pygame

        self._pygame = pygame
        self.fps = fps
        self.title = title
        self.input = ViewerInput()
        self._screen = None
        self._clock = pygame.time.Clock()
        self._scale = 1

    def show(self, step: int, recorded: np.ndarray, replayed: np.ndarray) -> bool:
        pg = self._pygame
        image = side_by_side(recorded, replayed)
        if self._screen is None or self._screen.get_size() != self._size(image):
            pg.display.init()
            self._scale = window_scale(image.shape[1] // 3)
            self._screen = pg.display.set_mode(self._size(image))
        diff = pixel_difference(recorded, replayed)
        state = "frames match" if diff == 0 else f"FRAMES DIFFER (max {diff})"
        pg.display.set_caption(f"{self.title}  step {step}  {state}")
        surface = pg.surfarray.make_surface(image.swapaxes(0, 1))
        if self._scale != 1:
            surface = pg.transform.scale(surface, self._screen.get_size())
        self._screen.blit(surface, (0, 0))
        pg.display.flip()
        while True:
            for event in pg.event.get():
                self.input.process_event(event)
            if self.input.quit:
                return False
            self._clock.tick(self.fps)
            if not self.input.paused:
                return True

    def close(self) -> None:
        if self._screen is not None:
            self._screen = None
            self._pygame.display.quit()

    def _size(self, image: np.ndarray) -> tuple[int, int]:
        scale = window_scale(image.shape[1] // 3)
        return image.shape[1] * scale, image.shape[0] * scale
