"""Export to a Minari dataset (https://minari.farama.org), in Minari's Arrow storage, so that
`minari.load_dataset(id)` opens it and `dataset.recover_environment()` makes the recorded env.

Written without Minari's DataCollector (which would re-encode every frame as JPEG quality 75):
each episode is one Arrow file `data/<n>/part-0.arrow` laid out as Minari's ArrowStorage writes
it, with our own frame bytes in the `observations` column (Minari decodes them with Pillow, which
gives exactly the pixels gymrec decodes: JPEG and PNG alike). Frames smaller than 32×32, which
Minari does not treat as images, are stored decoded instead. Minari's conventions: N steps have
N+1 observations (the last is the episode's final observation); an episode cut by a gap keeps
its steps up to the gap, the last one marked truncated. Infos hold each frame's timestamp.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shared.codec import decode_frame
from shared.errors import UsageError
from shared.version import PLATFORM_MAKERS, platform_package
from writer.export.episodes import Episode

DATA_FORMAT = "arrow"
NO_SEED = -1


def require_minari() -> Any:
    try:
        import minari
    except ImportError:
        raise UsageError("the Minari export needs the minari package: uv sync --extra minari "
                         "(or pip install 'gymrec[minari]')") from None
    return minari


def default_dataset_id(env_folder: str) -> str:
    """`gymrec/<env>-v0` (Minari ids are `namespace/name-vN`)."""
    return f"gymrec/{env_folder}-v0"


def check_dataset_id(dataset_id: str) -> str:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except ValueError as exc:
        raise UsageError(f"{dataset_id!r} is not a Minari dataset id (namespace/name-vN)") \
            from exc
    return dataset_id


def action_space(desc: dict) -> Any:
    """The gymnasium space of an action space description (Box bounds are not recorded:
    unbounded)."""
    from gymnasium import spaces

    kind = desc["type"]
    if kind == "Discrete":
        return spaces.Discrete(desc["n"], start=desc["start"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(desc["n"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(desc["nvec"])
    if kind == "Box":
        return spaces.Box(-np.inf, np.inf, tuple(desc["shape"]), np.dtype(desc["dtype"]))
    return spaces.Dict({k: action_space(sub) for k, sub in desc["spaces"].items()})


def observation_space(frame_shape: list[int]) -> Any:
    """Frames as Minari sees them: (H, W, C) uint8, or (H, W) for one channel (what Pillow
    decodes a grey picture to)."""
    from gymnasium import spaces

    shape = tuple(frame_shape) if frame_shape[2] != 1 else tuple(frame_shape[:2])
    return spaces.Box(0, 255, shape, np.uint8)


def env_spec(start: dict) -> Any:
    """The EnvSpec `recover_environment()` makes the recorded env from: the registered spec of
    Atari and VizDoom ids with the session's env kwargs; Stable-Retro's `make` with the game and
    state. None for a platform this writer does not know."""
    import gymnasium as gym
    from gymnasium.envs.registration import EnvSpec

    platform, env_id, kwargs = start["platform"], start["env_id"], dict(start["env_kwargs"])
    how, _, where = PLATFORM_MAKERS.get(platform, "").partition(":")
    if how == "make":
        return EnvSpec(id=env_id, entry_point=where, kwargs={"game": env_id, **kwargs})
    if how != "register":
        return None
    try:
        importlib.import_module(where)  # registers the platform's ids
        spec = gym.spec(env_id)
    except (ImportError, gym.error.Error) as exc:  # the platform is not installed here
        print(f"gymrec-writer: no env_spec for {env_id} ({exc}): recover_environment() will "
              "not work", file=sys.stderr)
        return None
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs})


_INFO_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}


def _fixed_list(values: np.ndarray, dtype: np.dtype) -> pa.Array:
    values = values.reshape(len(values), -1).astype(dtype)
    kind = pa.list_(pa.from_numpy_dtype(dtype), values.shape[1])
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), type=kind)


def action_array(space: Any, actions: list, pad: int) -> pa.Array:
    """Actions as Minari's ArrowStorage stores them (`pad` zero rows appended)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        arrays = [action_array(sub, [a[k] for a in actions], pad)
                  for k, sub in space.spaces.items()]
        return pa.StructArray.from_arrays(arrays, names=list(space.spaces))
    if isinstance(space, spaces.Discrete):
        return pa.array(list(actions) + [0] * pad, pa.from_numpy_dtype(space.dtype))
    values = np.asarray(actions, dtype=space.dtype).reshape((len(actions), *space.shape))
    values = np.concatenate([values, np.zeros((pad, *space.shape), space.dtype)])
    return _fixed_list(values, space.dtype)


@dataclass
class MinariCounts:
    episodes: int = 0
    steps: int = 0
    cut: int = 0  # episodes ended at a gap (truncated there)
    skipped: int = 0  # episodes too short to export (no complete step)


class MinariWriter:
    """Writes episodes into a Minari dataset folder (`<root>/data/`)."""

    def __init__(self, root: Path, start: dict, dataset_id: str,
                 info_columns: dict | None = None):
        from minari.dataset.minari_storage import MinariStorage, is_image_space

        self.start, self.dataset_id = start, dataset_id
        # The typed info (name → dtype) as fields of infos, beside the timestamp.
        self.info_columns = {k: d for k, d in (info_columns or {}).items() if k != "timestamp"}
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.obs_space = observation_space(start["frame_shape"])
        self.act_space = action_space(start["action_space"])
        self.images = is_image_space(self.obs_space)
        spec = env_spec(start)
        self.storage = MinariStorage.new(self.data, observation_space=self.obs_space,
                                         action_space=self.act_space, env_spec=spec,
                                         data_format=DATA_FORMAT, jpeg_encoding=self.images)
        self.counts = MinariCounts()

    def _observations(self, images: list[bytes]) -> pa.Array:
        if self.images:
            return pa.array(images, pa.binary())
        channels = self.start["frame_shape"][2]
        frames = np.stack([decode_frame(b, self.start["codec"], channels) for b in images])
        return _fixed_list(frames.reshape((len(frames), *self.obs_space.shape)), np.uint8)

    def add(self, episode: Episode) -> None:
        """Write one episode (a cut one loses its last action, whose outcome is unknown)."""
        steps = episode.steps if episode.final else episode.steps - 1
        if steps < 1:
            self.counts.skipped += 1
            return
        truncations = list(episode.truncations[:steps])
        if not episode.final:
            truncations[-1] = True
            self.counts.cut += 1
        images = episode.images[:steps + 1]
        n = self.counts.episodes
        batch = pa.RecordBatch.from_pydict({
            "episode_id": pa.array([n] * (steps + 1), pa.int32()),
            "observations": self._observations(images),
            "actions": action_array(self.act_space, episode.actions[:steps], pad=1),
            "rewards": pa.array(episode.rewards[:steps] + [0.0], pa.float64()),
            "terminations": pa.array(episode.terminations[:steps] + [False], pa.bool_()),
            "truncations": pa.array(truncations + [False], pa.bool_()),
            "infos": self._infos(episode, steps + 1),
        })
        folder = self.data / str(n)
        folder.mkdir()
        with pa.OSFile(str(folder / "part-0.arrow"), "wb") as sink, \
                pa.ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
        meta = {"id": n, "total_steps": steps, "gymrec_episode_id": episode.episode_id,
                "cut_by_gap": not episode.final}
        if episode.seed != NO_SEED:
            meta["seed"] = episode.seed
        (folder / "metadata.json").write_text(json.dumps(meta))
        self.counts.episodes += 1
        self.counts.steps += steps

    def _infos(self, episode: Episode, rows: int) -> pa.StructArray:
        """Minari's infos: the timestamp and the typed info of each observation."""
        arrays = [pa.array(episode.timestamps[:rows], pa.float64())]
        arrays += [pa.array([i.get(name) for i in episode.infos[:rows]], _INFO_TYPES[dtype])
                   for name, dtype in self.info_columns.items()]
        return pa.StructArray.from_arrays(arrays, names=["timestamp", *self.info_columns])

    def finish(self, collectors: Iterable[str], description: str) -> None:
        """The dataset's own metadata (counts, ids, who recorded it, package requirements)."""
        from minari import __version__

        package = platform_package(self.start["platform"])
        version = self.start.get("versions", {}).get(package or "")
        self.storage.update_metadata({
            "dataset_id": self.dataset_id, "minari_version": __version__,
            "total_episodes": self.counts.episodes, "total_steps": self.counts.steps,
            "author": set(collectors), "description": description,
            "algorithm_name": "gymrec recording",
            **({"requirements": [f"{package}=={version}"]} if package and version else {}),
        })
        self.storage.update_metadata({"dataset_size": self.storage.get_size()})
