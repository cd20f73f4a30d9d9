"""Polling until something is done, within an optional time limit."""

import time


class Deadline:
    """sleep_for(interval): how long to sleep before the next poll, or TimeoutError once the
    limit has passed (None: no limit)."""

    def __init__(self, what: str, timeout: float | None) -> None:
        self.what, self.timeout = what, timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def sleep_for(self, interval: float) -> float:
        if self.end is None:
            return interval
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self.what} not done after {self.timeout} s")
        return min(interval, left)
