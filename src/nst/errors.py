"""The one exception type for failures a user causes and can fix."""

import errno
import signal
import sys
from collections.abc import Callable
from functools import wraps

# Failures of the machine rather than of nst: said in one sentence at any point of a run.
WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class UserError(Exception):
    """A problem with the user's input or configuration, stated in one sentence with its fix.

    The command-line entry points print the message and exit with code 2; nothing is written.
    """


def user_error_cause(error: BaseException) -> UserError | None:
    """The `UserError` behind `error`, also when a library wrapped it (Hydra's `instantiate`)."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__
    return error


def write_refusal(error: OSError) -> str:
    """Why a folder refused a new file, in a few words."""
    # /proc and its kind exist but answer ENOENT to every new name
    return "it takes no new files" if error.errno == errno.ENOENT else error.strerror.lower()


def machine_error(error: BaseException) -> str | None:
    """One sentence for a failed write (permission, read-only, disk full) or an allocation that
    did not fit in memory, else None."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRORS:
        where = f" {error.filename}" if error.filename else ""
        return f"Cannot write{where}: {error.strerror.lower()}; nothing was left half-written."
    text = str(error)
    if isinstance(error, MemoryError) or "can't allocate" in text or "out of memory" in text:
        return (
            "Out of memory: the request needs more memory than this machine has; try a smaller "
            "size= (trained networks: a smaller max_memory= tiles the image)."
        )
    return None


terminated = False  # set by `on_sigterm`: the interrupt was a SIGTERM, not Ctrl-C


def on_sigterm(signum: int, frame) -> None:
    """A SIGTERM handler that stops like Ctrl-C (the same cleanup), then exits with code 143."""
    global terminated
    terminated = True
    raise KeyboardInterrupt


def interrupted() -> None:
    """Say that Ctrl-C (exit code 130) or SIGTERM (143) stopped the command before it wrote
    anything."""
    print("interrupted: nothing was written.", file=sys.stderr)
    sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))


def exit_on_user_error(main: Callable) -> Callable:
    """Wrap a command-line entry point: a `UserError` becomes one line on stderr and exit code 2,
    Ctrl-C one line and exit code 130."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as error:
            cause = user_error_cause(error) or machine_error(error)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            interrupted()
        except SystemExit as exit_:  # Lightning turns Ctrl-C inside fit into exit code 1
            if isinstance(exit_.__context__, KeyboardInterrupt):
                interrupted()
            raise

    return wrapper
