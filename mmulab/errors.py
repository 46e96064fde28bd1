"""One exception type for every mistake a user can fix: it carries a one-line message, never a traceback."""


class UserError(Exception):
    """A problem with input, configuration or the environment, told as one line naming what to fix."""
