"""The one exception type users see: a message they can act on."""


class PplVaeError(Exception):
    """A user mistake or a fault the user can fix.

    The message is one line that says what is wrong and what to do; the CLI
    prints it without a traceback and exits with status 2.
    """


class PplVaeWarning(UserWarning):
    """Something works, but slower or differently than the user may expect; one line."""
