"""The gymrec version, and the versions of the packages that decide what an env does."""

from __future__ import annotations

from importlib import metadata
from types import MappingProxyType

VERSION = "0.1.0"
# Per platform (the name a SessionStart carries), the distributions whose versions decide what
# its envs do. The one table both sides read: the recorder's platform modules (recorder/envs/)
# take theirs from here, the writer's Hub card names the first beside the platform.
PLATFORM_PACKAGES = MappingProxyType({
    "atari": ("ale-py",),
    "retro": ("stable-retro",),
    "vizdoom": ("vizdoom",),
})
# How a dataset's env is made again outside the recorder (the exports' env_spec): "register:M"
# (importing module M registers the platform's gymnasium ids) or "make:M:F" (F in M makes it,
# taking the game id as `game`).
PLATFORM_MAKERS = MappingProxyType({
    "atari": "register:ale_py",
    "retro": "make:stable_retro:make",
    "vizdoom": "register:vizdoom.gymnasium_wrapper",
})
TRACKED_PACKAGES = ("gymnasium", *(n for names in PLATFORM_PACKAGES.values() for n in names),
                    "numpy", "simplejpeg")


def platform_package(platform: str) -> str | None:
    """The main package of a platform ("atari" → "ale-py"); None for one not in the table."""
    names = PLATFORM_PACKAGES.get(platform, ())
    return names[0] if names else None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
