"""User errors: one line naming the cause and the fix, exit code 2, no traceback."""


class UserError(Exception):
    """A mistake the user can fix (config, names, files, keys). Bugs are not UserErrors."""

    exit_code = 2
