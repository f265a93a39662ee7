"""thinkcount: predict from a prompt how much a reasoning LLM will think."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input or configuration, reported as one sentence."""
