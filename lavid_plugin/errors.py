"""One exception type for bad user input, so command lines can print one clear line."""

_WORKER_PREFIX = "Caught LavidError in DataLoader worker"
_ORIGINAL = "LavidError: "


class LavidError(Exception):
    """Bad input (file, line, class or key named in the message); shown without a traceback.

    A LavidError raised in a DataLoader worker reaches the main process rebuilt from the worker's
    whole traceback text; the message is cut back to the original one."""

    def __init__(self, *args):
        if args and isinstance(args[0], str) and args[0].startswith(_WORKER_PREFIX) and _ORIGINAL in args[0]:
            args = (args[0][args[0].index(_ORIGINAL) + len(_ORIGINAL):].rstrip(), *args[1:])
        super().__init__(*args)
