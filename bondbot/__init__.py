"""bondbot: the command line entry point and settings shared by the CLI and the bot."""

__version__ = "0.1.0"
