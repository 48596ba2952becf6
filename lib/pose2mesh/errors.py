"""The user-facing error type.

Any problem a user can fix (bad config key, unknown name, missing file, malformed input) is
raised as :class:`Pose2MeshError` with a one-line message that says what was expected and
where. The command lines catch it, print ``error: <message>`` and exit with status 2, so the
user never sees a bare traceback from deep inside the library.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps


class Pose2MeshError(Exception):
    """A problem with the user's input, config or files; the message is one line."""


EXIT_USER_ERROR = 2


def too_deeply_nested(where) -> Pose2MeshError:
    """The error for JSON, YAML or a config value whose nesting exhausts the parser -- the
    RecursionError (MemoryError in Python's own parser) that 100,000 nested brackets raise.
    No valid pose, config, checkpoint or annotation file nests that deep."""
    return Pose2MeshError(f"{where}: nested too deeply to parse (no valid input nests this deep)")


def exit_on_user_error(main: Callable[..., int | None]) -> Callable[..., int | None]:
    """Decorator for command-line entry points: a Pose2MeshError becomes one stderr line
    and exit status 2 instead of a traceback."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Pose2MeshError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper
