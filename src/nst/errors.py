"""The one exception type for failures a user causes and can fix."""

import sys
from collections.abc import Callable
from functools import wraps


class UserError(Exception):
    """A problem with the user's input or configuration, stated in one sentence with its fix.

    The command-line entry points print the message and exit with code 2; nothing is written.
    """


def exit_on_user_error(main: Callable) -> Callable:
    """Wrap a command-line entry point: a `UserError` becomes one line on stderr and exit code 2,
    Ctrl-C one line and exit code 130."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: nothing was written.", file=sys.stderr)
            sys.exit(130)

    return wrapper
