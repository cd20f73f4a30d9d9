"""A Redis server of the test's own (not the shared one): no persistence, so a restart loses
every queued message, as a crashed or replaced Redis without a volume does."""

import shutil
from pathlib import Path

import redis

from tests.conftest import missing_service
from tests.e2e.conftest import Service, free_port, start
from tests.faults import checks


class RedisServer:
    def __init__(self, services: list[Service], log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server is not installed (the fault tests start their own)")
        self.binary = str(binary)
        self.services = services
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.restarts = 0
        self.service = self._start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def restart_empty(self) -> None:
        """Stop the server and start a new one on the same port, with nothing in it."""
        self.service.stop()
        self.restarts += 1
        place = self.services.index(self.service)
        self.service = self._start()
        # In the old one's place: stopped after the processes that use it, not before them.
        self.services.remove(self.service)
        self.services.insert(place, self.service)

    def _start(self) -> Service:
        folder = self.log_dir / f"redis-{self.restarts}"
        folder.mkdir()
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        service = start(self.services, f"redis-{self.restarts}", argv, {}, self.log_dir)

        def answers() -> bool:
            if service.process.poll() is not None:
                raise AssertionError(f"redis-server exited:\n{service.output()}")
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                return False

        checks.wait_until(answers, 20, "redis-server to answer", self.services)
        return service
