"""`gymrec-record --list [WORD]`: the env ids of each platform, grouped, with their default FPS.

Without WORD the listing is a summary (Atari games, Retro games with their ROM, VizDoom
scenarios and map families); with WORD every id containing it (any case) is named.
`listing_lines` is pure; `gather` asks the installed packages.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from recorder.envs import ATARI, DEFAULT_FPS, RETRO, VIZDOOM, known_ids

WIDTH = 100


@dataclass(frozen=True)
class Catalogue:
    atari: list[str]
    retro: dict[str, bool]  # game id → ROM imported
    vizdoom: list[str]
    missing_wads: list[str]  # commercial WADs (doom.wad, doom2.wad) that are not installed


def gather() -> Catalogue:
    import os

    import stable_retro as retro
    import vizdoom

    ids = known_ids()
    roms = {}
    for game in sorted(ids[RETRO]):
        try:
            retro.data.get_romfile_path(game, retro.data.Integrations.STABLE)
            roms[game] = True
        except FileNotFoundError:
            roms[game] = False
    wads = [w for w in ("doom.wad", "doom2.wad")
            if not os.path.exists(os.path.join(vizdoom.scenarios_path, w))]
    return Catalogue(sorted(ids[ATARI]), roms, sorted(ids[VIZDOOM]), wads)


def listing_lines(cat: Catalogue, word: str | None = None) -> list[str]:
    if word:
        return _matching(cat, word.lower())
    return [*_atari(cat), "", *_retro(cat), "", *_vizdoom(cat), "",
            "gymrec-record --list WORD names every id containing WORD."]


def _head(name: str, platform: str, what: str) -> str:
    return f"{name} (default {DEFAULT_FPS[platform]:g} fps): {what}"


def _wrapped(items: list[str], indent: str = "  ") -> list[str]:
    """Items two spaces apart, in lines of at most WIDTH characters (an item is never split)."""
    lines, current = [], ""
    for item in items:
        if current and len(indent) + len(current) + 2 + len(item) > WIDTH:
            lines.append(indent + current)
            current = item
        else:
            current = f"{current}  {item}" if current else item
    return [*lines, indent + current] if current else lines


def _ids(n: int) -> str:
    return f"{n} id" if n == 1 else f"{n} ids"


def _atari(cat: Catalogue) -> list[str]:
    games = sorted({i.removeprefix("ALE/").removesuffix("-v5") for i in cat.atari
                    if i.startswith("ALE/")})
    return [_head("Atari, ale-py", ATARI, f"{len(games)} games, {len(cat.atari)} ids"),
            "  ids: ALE/<Game>-v5 (sticky actions), <Game>NoFrameskip-v4, <Game>-v4, -v0 forms",
            *_wrapped(games)]


def _retro(cat: Catalogue) -> list[str]:
    ready = [g for g, ok in cat.retro.items() if ok]
    missing = Counter(g.removesuffix("-v0").rsplit("-", 1)[-1]
                      for g, ok in cat.retro.items() if not ok)
    lines = [_head("Stable-Retro", RETRO, f"{len(ready)} of {len(cat.retro)} games have their "
                   "ROM (import yours: python -m retro.import DIR)"),
             "  ROM available:", *_wrapped(ready, "    ")]
    if missing:
        lines += ["  ROM missing:", *_wrapped([f"{c} {n}" for c, n in missing.most_common()],
                                              "    ")]
    return lines


def _doom_family(env_id: str) -> str | None:
    m = re.match(r"Vizdoom(Doom2|Doom|Freedoom1|Freedoom2)(E\dM\d|MAP\d\d)-S\d-v\d$", env_id)
    return m.group(1) if m else None


def _vizdoom(cat: Catalogue) -> list[str]:
    scenarios = [i for i in cat.vizdoom if _doom_family(i) is None]
    singles = [i for i in scenarios if "-MultiBinary-" not in i]
    families = Counter(_doom_family(i) for i in cat.vizdoom if _doom_family(i))
    needs = {"Doom": "doom.wad", "Doom2": "doom2.wad"}
    maps = []
    for family, n in sorted(families.items()):
        wad = needs.get(family)
        note = f", needs {wad} (not installed)" if wad in cat.missing_wads else ""
        maps.append(f"Vizdoom{family}<map>-S<skill 1-5>-v0: {_ids(n)}{note}")
    return [_head("VizDoom", VIZDOOM, f"{len(scenarios)} scenario ids, "
                  f"{sum(families.values())} map ids"),
            "  scenarios (each also as <name>-MultiBinary-v1):", *_wrapped(singles, "    "),
            "  maps:", *(f"    {m}" for m in maps)]


def _matching(cat: Catalogue, word: str) -> list[str]:
    lines = []
    groups = [("Atari", ATARI, {i: "" for i in cat.atari}),
              ("Stable-Retro", RETRO, {g: "" if ok else "  (ROM missing)"
                                       for g, ok in cat.retro.items()}),
              ("VizDoom", VIZDOOM, {i: _wad_note(i, cat) for i in cat.vizdoom})]
    for name, platform, ids in groups:
        found = [f"  {i}{note}" for i, note in ids.items() if word in i.lower()]
        if found:
            lines += [_head(name, platform, _ids(len(found))), *found]
    return lines or [f"no env id contains {word!r}"]


def _wad_note(env_id: str, cat: Catalogue) -> str:
    wad = {"Doom": "doom.wad", "Doom2": "doom2.wad"}.get(_doom_family(env_id) or "")
    return f"  (needs {wad})" if wad in cat.missing_wads else ""
