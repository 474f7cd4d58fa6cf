"""What every entry script shares: bad input ends in one clear line and exit code 2."""
import sys


class UsageError(Exception):
    """Bad input from the user (a path, a flag value, a dataset): reported in one line."""


def exit_on_usage_error(main):
    """Wraps an absl `main(argv)` so a UsageError prints `error: <message>` and exits 2."""
    def wrapped(argv):
        try:
            return main(argv)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    return wrapped
