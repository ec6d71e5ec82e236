"""The one error family of gymrec: each expected failure is a GymrecError, said in one line."""


class GymrecError(Exception):
    """Base class: the CLIs print `str(err)` on one line and exit with `exit_code`."""

    exit_code = 1


class UsageError(GymrecError):
    """A bad value given by the user (unknown env id, bad flag, bad keymap)."""

    exit_code = 2


class EnvNotFound(UsageError):
    """An env id that no installed platform knows."""


class RomMissing(GymrecError):
    """A Stable-Retro game whose ROM has not been imported."""

    exit_code = 3


class EndpointBusy(GymrecError):
    """The ZeroMQ endpoint is held by something that is not a gymrec writer."""

    exit_code = 4


class WriterUnavailable(GymrecError):
    """No writer answered, or it went away with data not yet confirmed durable."""

    exit_code = 5


class ProtocolError(GymrecError):
    """A message on the wire that does not decode into a valid gymrec message."""


class StorageError(GymrecError):
    """The data folder cannot be written (permissions, disk full, another writer)."""

    exit_code = 6


class AgentFailed(GymrecError):
    """The agent raised, or returned an action outside the action space."""

    exit_code = 8
