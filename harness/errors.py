"""Errors the CLI turns into exit code 2 with a one-line message (no traceback)."""


class ConfigError(ValueError):
    """A scenario, limits or criteria file (or a CLI option) is malformed.

    The message names the file, the field path, the bad value and what is allowed,
    because the person reading it has only the terminal to go on.
    """


class HarnessError(RuntimeError):
    """The harness could not do its job (target unreachable, provisioning failed, ...)."""
