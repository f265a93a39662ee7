"""thinkcount: predict from a prompt how much a reasoning LLM will think."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input or configuration, reported as one sentence."""


def exit_status(work):
    """Run work() for a command-line entry: 0 when it succeeds; a UserError is printed as one line on stderr
    and gives 1."""
    import sys
    try:
        work()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
