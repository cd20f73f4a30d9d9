"""Hand queued jobs to something that runs them: Celery by task name, or the embedded runner.

- base: the Dispatcher protocol, task names, estimate answers, the runner's child protocol,
  and `dispatch` (send one job, record it sent)
- celery: CeleryDispatcher; embedded: EmbeddedRunner; maintenance: MaintenanceLoop

`make_dispatcher` is the one place that looks at which mode the service runs in
(DISTILLERY_BROKER_URL).
"""

from app.dispatch.base import Dispatcher
from app.dispatch.celery import CeleryDispatcher
from app.dispatch.embedded import EmbeddedRunner
from app.settings import Settings


def make_dispatcher(settings: Settings) -> Dispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings)
    return EmbeddedRunner(settings)
