"""The one exception type that means "the user asked for something we cannot do".

Everything that is the user's to fix (an unknown profile or dataset, a corrupted
file, a missing directory) raises :class:`UserError` with a single line that
says what is wrong and how to fix it. The command line prints that line and
exits with status 2; a chapter cell shows it as the error of the cell.
"""


class UserError(ValueError):
    """A one-line, actionable error caused by input the user controls."""

    exit_status = 2

    def __init__(self, message: str):
        # Keep the message on one line, whatever the caller built.
        super().__init__(" ".join(str(message).split()))
