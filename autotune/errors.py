"""The one exception type that means "the user asked for something impossible"."""


class UserError(Exception):
    """Bad input: the CLI prints the message as one line on stderr and exits with code 2."""
