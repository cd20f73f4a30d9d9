"""The job service's exceptions, which the API answers as HTTP errors (app/errors.py)."""


class JobNotFound(LookupError):
    pass


class JobConflict(RuntimeError):
    """The request cannot be applied to the job in its current state."""


class LeaseLost(RuntimeError):
    """The worker no longer holds the job (it was presumed dead and the job requeued)."""


class IdempotencyConflict(RuntimeError):
    """The Idempotency-Key was already used with a different request body."""


class QuotaExceeded(RuntimeError):
    """The tenant is at one of its job limits (answered 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after
