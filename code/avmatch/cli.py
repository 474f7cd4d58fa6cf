"""What every entry script shares: bad input ends in one clear line and exit code 2.

This is the entry scripts' own module: the one place outside them that touches absl flags,
and only to report a flag that cannot be parsed the same way as any other bad input.
"""
import sys


class UsageError(Exception):
    """Bad input from the user (a path, a flag value, a dataset): reported in one line."""


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def exit_on_usage_error(main):
    """Wraps an absl `main(argv)` so a UsageError prints `error: <message>` and exits 2."""
    def wrapped(argv):
        try:
            return main(argv)
        except UsageError as error:
            _fail(error)
    return wrapped


def parse_flags_or_exit(argv):
    """absl's flag parsing, with an unknown flag or a bad value reported like other bad input."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(error)


def run(main):
    """absl.app.run(main) where bad flags and UsageErrors end in one line and exit code 2."""
    from absl import app
    app.run(exit_on_usage_error(main), flags_parser=parse_flags_or_exit)
