"""One exception root; each boundary translates foreign errors into these."""

from __future__ import annotations


class CrontainerError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(CrontainerError):
    """The config cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class EngineError(CrontainerError):
    """A Docker engine call failed; the message says what and why."""


class EngineUnavailableError(EngineError):
    """The engine did not answer (not running, unreachable, or too slow)."""


class EngineNotFoundError(EngineError):
    """The engine has no such object (container, image, exec): HTTP 404."""


class EngineConflictError(EngineError):
    """The engine refused for the object's state (a name in use, a removal in progress):
    HTTP 409."""


class PullDeniedError(EngineError):
    """The image's registry refused the pull (401, 403, ``unauthorized``, ``denied``): wrong
    or missing credentials, or no access to the repository. ``registry`` names it."""

    def __init__(self, message: str, registry: str) -> None:
        super().__init__(message)
        self.registry = registry
