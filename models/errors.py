"""The one exception type msfkit raises for a user's mistake (bad path, bad file, bad name).

The CLI prints such an error as one line and exits non-zero; anything else is a bug.
It lives in `msfkit.models` because that is the bottom room: every other room may import it.
"""


class MsfkitError(Exception):
    """A user-facing error: its message is one clear line that says what to do."""
