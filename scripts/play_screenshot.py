"""Screenshot of the human-play window with its HUD (docs/images/play-hud.png).

Runs a short scripted session in a real window into a local writer (started for the duration),
holding a few keys, and saves the window surface after `--at` recorded steps. Needs a display:

    xvfb-run -s "-screen 0 1280x1024x24" uv run python scripts/play_screenshot.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
import pygame

from recorder.delivery.local_writer import ensure_writer
from recorder.envs import resolve_env
from recorder.play.keymaps import load_keymap
from recorder.play.window import PlaySettings, PlayStatus, play

ROOT = Path(__file__).resolve().parents[1]
HELD = {"right", "x", "up"}  # Retro: right + A + up; harmless on the other platforms


@click.command()
@click.option("--env-id", default="Airstriker-Genesis")
@click.option("--at", "at_step", default=240, show_default=True)
@click.option("--out", type=click.Path(path_type=Path),
              default=ROOT / "docs" / "images" / "play-hud.png", show_default=True)
def main(env_id: str, at_step: int, out: Path) -> None:
    if os.environ.get("SDL_VIDEODRIVER") == "dummy" or not os.environ.get("DISPLAY"):
        raise click.ClickException("needs a display: run it under xvfb-run")
    choice = resolve_env(env_id)
    data_dir = Path(tempfile.mkdtemp(prefix="gymrec-shot-"))
    endpoint = "ipc://" + str(data_dir / "w.sock")
    writer = ensure_writer(endpoint, data_dir, data_dir / "writer.log")
    held: set[str] = set()

    def events(status: PlayStatus) -> list[pygame.event.Event]:
        def post(kind: int, name: str) -> None:
            pygame.event.post(pygame.event.Event(kind, key=pygame.key.key_code(name)))

        if status.phase == "ready" and status.tick == 30:
            post(pygame.KEYDOWN, "space")
            post(pygame.KEYUP, "space")
        elif status.phase == "rec" and not held:
            for name in HELD:
                post(pygame.KEYDOWN, name)
            held.update(HELD)
        elif status.phase == "rec" and status.step == at_step:
            out.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(pygame.display.get_surface(), str(out))  # what is on screen
            post(pygame.KEYDOWN, "escape")
        return pygame.event.get()

    settings = PlaySettings(
        choice=choice, endpoint=endpoint, data_dir=data_dir, fps=None,
        keymap=load_keymap(None, choice.platform), base_seed=7, codec="jpeg", quality=95,
        buffer_bytes=256 << 20, drain_timeout=30, collector="screenshot",
    )
    result = play(settings, events=events)
    writer.wait_for_exit(timeout=30)
    click.echo(f"saved {out} ({result.progress.steps} steps recorded into {data_dir})")


if __name__ == "__main__":
    main()
