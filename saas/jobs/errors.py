"""The errors a job raises to say how it ended, and the two the job system raises inside it."""

from __future__ import annotations


class JobError(Exception):
    """Base class of the errors a job raises to say how it ended; `message` is French."""

    code = "exception"
    retry = True

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class PermanentError(JobError):
    """Retrying cannot help (invalid document, refused by the préfecture): fail now, with why."""

    code = "permanent"
    retry = False


class TransientError(JobError):
    """Try again later (remote down, rate limited); `retry_after` overrides the back-off."""

    code = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class JobCancelled(Exception):
    """Raised inside a job by progress() once an administrator has cancelled it."""


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and it was given to another)."""
