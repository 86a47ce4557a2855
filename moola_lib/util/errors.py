"""``ExpectedError``: the base of the errors that are the user's to fix from their message alone (bad data,
a run directory in use, a broken file). The command lines (``util.cli``) print them as one line and exit 2;
a wing defines its own as a subclass, so the command lines know it without importing that wing."""


class ExpectedError(Exception):
    """An error the user fixes from its message; a command line prints it as one line, exit status 2."""
