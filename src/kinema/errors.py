"""The one error type every layer raises for bad input from a user.

Its message is one line that says what is wrong and, where it can, what would be right.
The command line prints it and exits 2; the web answers 4xx with it.
"""


class InputError(ValueError):
    """Input that kinema refuses: a bad prompt, path, size, file or setting."""
