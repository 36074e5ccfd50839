"""The one exception type the CLI turns into a single `sdnet: error: ...` line (exit status 2)."""


class SdnetError(Exception):
    """An expected failure with a message meant for the user: bad setting, bad archive, NaN loss."""
