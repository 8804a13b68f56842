"""The one error type of the importer."""


class ConversionError(Exception):
    """A model the importer cannot convert; the message names the op/node/file to look at."""
