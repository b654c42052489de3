"""The project's user-facing error types.

A :class:`UserError` is something the user can fix (a bad flag, a missing or
malformed file, an unreachable download, a missing optional package): the CLI
prints its message as one line and exits with status 2. Every other exception
is a bug and surfaces with its traceback.
"""

from __future__ import annotations

import importlib.util


class UserError(Exception):
    """An error the user can act on; the message names the file, row or flag and the fix."""


class UsageError(UserError, ValueError):
    """A flag, spec or option value that cannot work (the message names the flag)."""


def require(packages: tuple[str, ...], what: str, extra: str = "hf") -> None:
    """Check that optional packages are installed, without importing them.

    Raises:
        UserError: Naming the missing packages and the install command.
    """
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"{what}: {', '.join(missing)} not installed; pip install 'thinksafe[{extra}]'")
