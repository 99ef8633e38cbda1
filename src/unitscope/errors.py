"""The one exception type that the CLI turns into a one-line message and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: the message says what is wrong and how to mend it.

    The CLI prints it on one line, exits with status 2 and shows no traceback (unless --debug).
    """
