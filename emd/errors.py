"""Error types. Every user-facing failure names the input and the values it allows."""


class EmdError(Exception):
    """Base class of every error emd raises on purpose (bad input, outage, interrupted run)."""


class ConfigError(EmdError, ValueError):
    """A config key, flag or YAML value is unknown, of the wrong type or out of range."""


class DataError(EmdError, ValueError):
    """A dataset file, row or field is missing or malformed (message names file, row and field)."""


class ModelError(EmdError, ValueError):
    """A model URI is unknown or the model cannot be loaded."""


class JudgeError(EmdError, RuntimeError):
    """A judge backend failed in a way retries could not fix."""


class TrackingError(EmdError, RuntimeError):
    """The MLflow tracking store is unreachable or unwritable."""


class SandboxUnavailableError(EmdError, RuntimeError):
    """Model-written code was to run, but the OS sandbox (bubblewrap) is missing or cannot start.

    The message says how to install it, or that ``--unsafe-code-eval`` runs the code with only
    the in-process guard (not a security boundary).
    """
