"""Errors a user can cause and fix: the CLI prints them as one line and exits with code 2."""

import errno


class GenlabError(Exception):
    """Bad input: a missing file, a corrupt image, an unknown name, a wrong option.

    The message is a complete sentence for the user; the CLI prints it without a traceback.
    """

    exit_code = 2


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""

    exit_code = 1


class DiskFull(GenlabError, OSError):
    """No space left on the device (or over quota) while writing: exit code 2, one line naming the
    file and, in training, the last good checkpoint. An OSError too (errno ENOSPC), so code that
    treats a failed write as optional (a cache) still does."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC
