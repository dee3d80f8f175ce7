"""Errors a user can cause and fix: the CLI prints them as one line and exits with code 2."""


class GenlabError(Exception):
    """Bad input: a missing file, a corrupt image, an unknown name, a wrong option.

    The message is a complete sentence for the user; the CLI prints it without a traceback.
    """

    exit_code = 2


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""

    exit_code = 1
