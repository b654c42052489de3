"""The project's one user-facing error type.

A :class:`UserError` is something the user can fix (a bad flag, a missing or
malformed file, an unreachable download): the CLI prints its message as one
line and exits with status 2. Every other exception is a bug and surfaces with
its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can act on; the message names the file, row or flag and the fix."""
