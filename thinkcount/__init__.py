"""thinkcount: predict from a prompt how much a reasoning LLM will think."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input or configuration, reported as one sentence."""


def exit_status(work):
    """Run work() for a command-line entry: its status when it returns an int, else 0; a UserError is printed
    as one line on stderr and gives 1."""
    import sys
    try:
        status = work()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0
