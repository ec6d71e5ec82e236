"""Pieces both dataset cards share (the local README.md and the Hub's): the statistics section,
the preview picture and the license. Pure text; peer-supplied names are escaped for Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass

from writer.summary.stats import DatasetStats, Spread

# Game footage is the games' own pictures: whoever publishes it does not own its copyright, so no
# open license can honestly be the default. "other" says so; `--license` chooses another.
DEFAULT_LICENSE = "other"
LICENSE_NAME = "game-footage"
LICENSE_NOTE = (
    "The frames are pictures of the game, and the game's copyright belongs to its rights "
    "holders (the ROM's publisher for Atari and Stable-Retro games; id Software, the Freedoom "
    "project or the scenario's authors for VizDoom). The actions, rewards and metadata were "
    "recorded by the collectors. Use the footage as the games' terms and your law allow "
    "(research use is common); the license in the header was chosen by whoever recorded this "
    "dataset (`gymrec-writer --license`), default \"other\".")
PREVIEW_NAME = "preview.webp"


@dataclass(frozen=True)
class CardExtras:
    """What the Hub card shows beyond counts: statistics (over the sessions that carry theirs),
    the preview picture's bytes, the license."""

    stats: DatasetStats | None
    stats_sessions: int  # how many sessions the statistics cover
    preview: bytes | None
    license_id: str = DEFAULT_LICENSE


def cell(text: object) -> str:
    """A value from a peer, safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("`", "'").replace("\n", " ").replace("\r", " ")


def _spread_row(name: str, spread: Spread, digits: int) -> str:
    if spread.mean is None:
        return f"| {name} | n/a | | | | | |"
    q = spread.quantiles
    return (f"| {name} | {spread.mean:.2f} | {spread.min:.{digits}f} | "
            f"{q['p25']:.{digits}f} | {q['p50']:.{digits}f} | {q['p75']:.{digits}f} | "
            f"{spread.max:.{digits}f} |")


def stats_section(stats: DatasetStats, heading: str = "##") -> list[str]:
    """The card's statistics: counts, returns and lengths, outcomes and actions."""
    lines = [
        f"{heading} Statistics",
        "",
        f"{stats.episodes:,} episodes, {stats.frames:,} frames, {stats.hours:.2f} hours of play "
        f"(frames / each session's FPS), {stats.sessions} session(s), {stats.gaps} gap(s) "
        f"({stats.dropped_frames:,} frames dropped).",
        "",
        "| | mean | min | p25 | median | p75 | max |",
        "|---|---|---|---|---|---|---|",
        _spread_row("return", stats.returns, 2),
        _spread_row("length (steps)", stats.lengths, 0),
        "",
        "Outcomes: " + (", ".join(f"{cell(k)} {v:,}" for k, v in stats.outcomes.items())
                        or "none") + ".",
    ]
    if stats.actions:
        total = sum(stats.actions.values()) or 1
        what = "button" if stats.action_kind == "MultiBinary" else "action"
        lines += ["", f"| {what} | times | share |", "|---|---|---|"]
        lines += [f"| {cell(k)} | {v:,} | {100 * v / total:.1f}% |"
                  for k, v in stats.actions.items()]
    return lines + [""]


def preview_lines(path: str) -> list[str]:
    return [f"![A recorded episode, sped up]({path})", ""]


def license_section(license_id: str, heading: str = "##") -> list[str]:
    return [f"{heading} License", "", f"`{cell(license_id)}`. {LICENSE_NOTE}", ""]


def license_front_matter(license_id: str) -> dict:
    """The YAML keys of the license (the Hub wants a name for "other")."""
    if license_id == "other":
        return {"license": "other", "license_name": LICENSE_NAME}
    return {"license": license_id}
