"""The Hub side of a dataset, as plain functions over values: repo names, the dataset card
(README.md with YAML front matter) and `meta/info.json` for what has been published.

Everything here is derived from session files and published shard counts, with no clock in it: the
same inputs give the same bytes, so an unchanged card is never committed again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from shared.codec import describe_codec
from shared.config import dataset_dir_name
from shared.errors import UsageError
from shared.schema import COLUMNS, column_notes, features
from shared.version import platform_package
from writer.summary.card_parts import (
    PREVIEW_NAME,
    CardExtras,
    license_front_matter,
    license_section,
    preview_lines,
    stats_section,
)

REPO_PREFIX = "GymnasiumRecording__"
DEFAULT_REPO_TEMPLATE = "{user}/" + REPO_PREFIX + "{env}"
DATA_GLOB = "data/*.parquet"
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


@dataclass(frozen=True)
class Published:
    """Counts over the shards on the Hub (frames: rows that hold an action; play: seconds at
    each session's fps)."""

    shards: int = 0
    rows: int = 0
    frames: int = 0
    episodes: int = 0
    play_seconds: float = 0.0


def repo_id_for(template: str, env_id: str, user: str | None) -> str:
    """Fill `{env}` (the id with `/` → `_`) and `{user}` in a repo template; check the result."""
    if "{user}" in template and not user:
        raise UsageError("the repo name needs the Hub user name, but it is unknown")
    repo_id = template.replace("{env}", dataset_dir_name(env_id)).replace("{user}", user or "")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or len(parts[1]) > 96:
        raise UsageError(f"repo id {repo_id!r} is not of the form owner/name")
    return repo_id


def size_category(rows: int) -> str:
    return next((label for limit, label in _SIZES if rows < limit), "n>100M")


def hub_info(sessions: list[dict], published: Published,
             extras: CardExtras | None = None) -> dict:
    """`meta/info.json` on the Hub: what was published, its statistics and license, and the
    environment of its sessions."""
    info = {
        "published": asdict(published),
        "sessions": [s["start"]["session"] for s in sessions],
        "environment": sessions[0]["start"] if sessions else None,
    }
    if extras is not None:
        info["license"] = extras.license_id
        info["statistics"] = extras.stats.to_json() if extras.stats else None
    return info


def _front_matter(start: dict, published: Published, license_id: str) -> str:
    """Emitted by yaml.safe_dump: a peer's strings (platform, env id) are quoted as needed and
    cannot add keys (a `configs` of their own) to the header."""
    import yaml

    platform = start["platform"]
    meta = {
        **license_front_matter(license_id),
        "pretty_name": f"{start['env_id']} gameplay",
        "task_categories": ["reinforcement-learning"],
        "tags": ["gymrec", "gymnasium", "gameplay", "imitation-learning", platform,
                 platform_package(platform) or platform],
        "size_categories": [size_category(published.rows)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": DATA_GLOB}]}],
        "dataset_info": {"features": features(start["action_space"],
                                              start.get("info_columns"),
                                              start.get("extras"))._to_yaml_list()},
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _action_lines(start: dict) -> list[str]:
    labels = start.get("action_labels") or []
    space = start["action_space"]
    if not labels:
        return [f"Action space: `{json.dumps(space)}` (no labels recorded)."]
    head = ("| action | meaning |" if space["type"] == "Discrete"
            else "| index in `action` | button |")
    lines = [f"Action space: `{json.dumps(space)}`.", "", head, "|---|---|"]
    lines += [f"| {i} | {label} |" for i, label in enumerate(labels)]
    return lines


def _player_lines(sessions: list[dict]) -> list[str]:
    """Who played each session, and the key bindings of human play (one table per key map)."""
    players: dict[str, int] = {}
    keymaps: list[dict] = []
    for s in sessions:
        start = s["start"]
        player = start.get("player") or "not recorded (recorded before gymrec sent it)"
        if start.get("agent_sha256"):
            player += f" (file sha256 {start['agent_sha256'][:16]}…)"
        players[player] = players.get(player, 0) + 1
        keys = start.get("key_bindings") or {}
        if keys and keys not in keymaps:
            keymaps.append(keys)
    lines = ["Played by: " + ", ".join(f"{who} ({n} session{'s' * (n != 1)})"
                                       for who, n in sorted(players.items())) + "."]
    for keys in keymaps:
        lines += ["", "Key bindings" + (" (they differ between sessions)" if len(keymaps) > 1
                                        else "") + ":", "", "| key | control |", "|---|---|"]
        lines += [f"| `{_cell(k)}` | {_cell(v)} |"
                  for k, v in sorted(keys.items(), key=lambda kv: (kv[1], kv[0]))]
    return lines


def _cell(text: str) -> str:
    """A value from a peer, safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def _versions(sessions: list[dict]) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {}
    for s in sessions:
        for package, version in sorted(s["start"]["versions"].items()):
            seen.setdefault(package, set()).add(version)
        seen.setdefault("gymrec", set()).add(s["start"]["recorder_version"])
    return {k: sorted(v) for k, v in sorted(seen.items())}


def _differences(sessions: list[dict]) -> list[str]:
    """Settings in which sessions differ from the first (then the card's are not everyone's)."""
    keys = ("env_kwargs", "env_settings", "fps", "codec", "quality", "frame_shape",
            "action_space", "max_steps")
    first = sessions[0]["start"]
    return [k for k in keys if any(s["start"].get(k) != first.get(k) for s in sessions[1:])]


def card_text(repo_id: str, sessions: list[dict], published: Published,
              extras: CardExtras | None = None) -> str:
    """README.md of the Hub repo: YAML front matter, then the environment, counts, statistics,
    versions and how to load and replay the data. `sessions` are the published sessions'
    files; `extras` the statistics, preview and license (default: none, and "other")."""
    if not sessions:
        raise UsageError("a dataset card needs at least one session")
    extras = extras or CardExtras(stats=None, stats_sessions=0, preview=None)
    start = sessions[0]["start"]
    env_id, fps = start["env_id"], start["fps"]
    codec = describe_codec(start["codec"], start["quality"])
    gaps = sum(g["count"] for s in sessions for g in s["gaps"])
    differ = _differences(sessions)
    lines = [
        _front_matter(start, published, extras.license_id),
        f"# {_cell(env_id)} gameplay, recorded with gymrec",
        "",
        *(preview_lines(PREVIEW_NAME) if extras.preview else []),
        f"Every frame and every action of {len(sessions)} recording session(s) of `{env_id}`, "
        "captured exactly (no frame skipped, duplicated or reordered) by gymrec and "
        "published incrementally: each Parquet file under "
        "`data/` is one sealed shard of one session.",
        "",
        "## Environment",
        "",
        "| | |",
        "|---|---|",
        f"| platform | {start['platform']} ({platform_package(start['platform']) or '?'}) |",
        f"| env id | `{env_id}` |",
        f"| env kwargs | `{_cell(json.dumps(start['env_kwargs'], sort_keys=True))}` |",
        *([f"| env settings (as made) | "
           f"`{_cell(json.dumps(start['env_settings'], sort_keys=True))}` |"]
          if start.get("env_settings") else []),
        f"| FPS | {fps:g} |",
        f"| frames | {'×'.join(str(n) for n in start['frame_shape'])}, stored as {codec} |",
        f"| observation space | `{start['observation_space']}` |",
        f"| episode step limit | {start.get('max_steps') or 'none'} |",
        "",
    ]
    if differ:
        lines += [f"Sessions differ in: {', '.join(differ)}; each session's own settings are in "
                  "`meta/sessions/<session_id>.json`.", ""]
    lines += ["### Actions", "", *_action_lines(start), "", *_player_lines(sessions), ""]
    lines += [
        "## Counts",
        "",
        "| sessions | episodes | frames (steps) | rows | hours of play | dropped frames |",
        "|---|---|---|---|---|---|",
        f"| {len(sessions)} | {published.episodes:,} | "
        f"{published.frames:,} | {published.rows:,} | {published.play_seconds / 3600:.2f} "
        f"| {gaps} |",
        "",
        "Hours of play = frames / FPS. Each episode ends with one extra row (`is_last` true) "
        "holding the final observation, so rows = frames + episodes. No action was taken "
        "there: its `action` is -1 (NaN for float actions) and its `reward` 0, so every column "
        "keeps one dtype in numpy/torch batches.",
        "",
        *_stats_lines(extras, len(sessions)),
        "## Versions",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {p} | {', '.join(v)} |" for p, v in _versions(sessions).items()],
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{repo_id}", split="train")',
        'ds[0]["image"]  # PIL image: the frame the player saw when choosing ds[0]["action"]',
        f'stream = load_dataset("{repo_id}", split="train", streaming=True)',
        "```",
        "",
        "## Replay",
        "",
        "Each session's env kwargs, seeds, codec and action labels are in "
        "`meta/sessions/<session_id>.json` (and the environment in `meta/info.json`), so the "
        "recorded actions can be replayed in the same env:",
        "",
        "```bash",
        "# gymrec-replay comes with gymrec: in a clone of the gymrec repository,",
        "uv sync            # or: pip install .  (the env packages come with it)",
        f"uv run gymrec-replay {env_id} --repo {repo_id}",
        "```",
        "",
        "Install the package versions of the table above for a bit-exact replay "
        "(it warns about any that differ).",
        "",
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in COLUMNS) + ". Row t holds the frame seen when `action` t "
        "was chosen, and the reward and end flags that action produced. `seq` numbers each "
        "session's messages, for auditing delivery. "
        + column_notes(start.get("info_columns"), start.get("extras")),
        "",
        *license_section(extras.license_id),
    ]
    return "\n".join(lines)


def _stats_lines(extras: CardExtras, sessions: int) -> list[str]:
    if extras.stats is None:
        return []
    lines = stats_section(extras.stats)
    if extras.stats_sessions < sessions:
        lines += [f"(Statistics over the {extras.stats_sessions} of {sessions} sessions whose "
                  "files carry them: sessions published before gymrec recorded statistics "
                  "are not in them.)", ""]
    return lines
