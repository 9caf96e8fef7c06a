"""The two kinds of failure a user can meet, and their exit codes."""


class UsageError(Exception):
    """Bad input: a wrong parameter, an unknown section, a missing image or model.

    The CLI prints the message as one line and exits with 2, before anything is
    written. The message names the bad value and what would be valid.
    """

    exit_code = 2


class SectionFailed(Exception):
    """A section raised while running; earlier results stay in the store."""

    exit_code = 1

    def __init__(self, section_id: str, cause: BaseException):
        super().__init__(f"section {section_id} failed: {type(cause).__name__}: {cause}")
        self.section_id = section_id
        self.cause = cause

    def __reduce__(self):  # it crosses processes (Ray) with both of its arguments
        return SectionFailed, (self.section_id, self.cause)


class SweepFailed(Exception):
    """Some points of a sweep failed; the others are kept in the store."""

    exit_code = 1
