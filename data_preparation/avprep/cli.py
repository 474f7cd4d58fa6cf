"""What every entry script shares: bad input ends in one clear line and exit code 2.

This is the entry scripts' own module (those of data_preparation/, code/ and evaluation/;
it lives on the data side so that nothing there imports the model package): the one place
outside them that touches absl flags, and only to report a flag that cannot be parsed the
same way as any other bad input. Library modules never import it: they raise plain
exceptions (ValueError, FileNotFoundError, ...) that a script turns into a UsageError with
`reported`.
"""
import contextlib
import sys


class UsageError(Exception):
    """Bad input from the user (a path, a flag value, a dataset): reported in one line."""


@contextlib.contextmanager
def reported(*error_types, prefix=""):
    """Inside the block, an exception of one of `error_types` (a library's plain ValueError,
    FileNotFoundError, ...) becomes a UsageError with its message (after `prefix`)."""
    try:
        yield
    except error_types as error:
        raise UsageError(f"{prefix}{error}") from None


def _fail(message):
    # one line: some messages (TensorFlow's) carry a multi-line context after the first
    lines = str(message).strip().splitlines() or [""]
    print(f"error: {lines[0]}", file=sys.stderr)
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
