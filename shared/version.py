"""The gymrec version, and the versions of the packages that decide what an env does."""

from __future__ import annotations

from importlib import metadata

VERSION = "0.1.0"
TRACKED_PACKAGES = ("gymnasium", "ale-py", "stable-retro", "vizdoom", "numpy", "simplejpeg")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
