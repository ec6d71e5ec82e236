"""`gymrec-record --list [WORD]`: the env ids of each platform, grouped, with their default FPS.

Without WORD the listing is each platform's summary (for the built-in ones: Atari games, Retro
games with their ROM, VizDoom scenarios and map families); with WORD every id containing it
(any case) is named, with what is missing to play it; none is EnvNotFound (exit code 2).
`listing_lines` is pure; `gather` asks the installed packages, through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from recorder.envs import platform_named, platforms
from recorder.envs.base import count_ids, heading
from shared.errors import EnvNotFound

# Platform name → its catalogue: every id → what is missing to play it ("" when nothing).
Catalogues = Mapping[str, Mapping[str, str]]


def gather() -> dict[str, dict[str, str]]:
    return {p.name: p.catalogue() for p in platforms()}


def listing_lines(catalogues: Catalogues, word: str | None = None) -> list[str]:
    if word:
        return _matching(catalogues, word.lower())
    lines: list[str] = []
    for name, catalogue in catalogues.items():
        lines += [*platform_named(name).summary(catalogue), ""]
    return [*lines, "gymrec-record --list WORD names every id containing WORD."]


def _matching(catalogues: Catalogues, word: str) -> list[str]:
    lines = []
    for name, catalogue in catalogues.items():
        found = [f"  {i}  ({missing})" if missing else f"  {i}"
                 for i, missing in catalogue.items() if word in i.lower()]
        if found:
            lines += [heading(platform_named(name), count_ids(len(found))), *found]
    if not lines:
        raise EnvNotFound(f"no env id contains {word!r}; `gymrec-record --list` shows all")
    return lines
