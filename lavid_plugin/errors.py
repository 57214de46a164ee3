"""One exception type for bad user input, so command lines can print one clear line."""


class LavidError(Exception):
    """Bad input (file, line, class or key named in the message); shown without a traceback."""
