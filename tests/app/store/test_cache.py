"""The download cache of an S3 store stays under DISTILLERY_DOWNLOAD_CACHE_BYTES: job processes
reading uploads (worker.uploads) evict the least recently used copies, never one another job is
reading; gc trims it too. Real processes, the moto S3 server."""

import os
import subprocess
import sys
import time
from pathlib import Path

from app.db import upgrade_database
from app.housekeeping import collect_garbage
from app.settings import Settings
from app.store import make_store
from app.store.base import file_key
from tests.conftest import S3_TEST_ENV

ROOT = Path(__file__).resolve().parents[3]

# A job's process: reads the uploads named in argv to local paths (printed), then holds them
# until its stdin closes.
JOB = """
import sys
from app.settings import Settings
from worker.uploads import UploadedFile

settings = Settings()
for key in sys.argv[1:]:
    upload = UploadedFile(id="f", purpose="dataset", format="npz", bytes=0, sha256="",
                          storage_key=key, info={}, settings=settings)
    print(upload.local_path(), flush=True)
sys.stdin.read()
"""


class Job:
    def __init__(self, env: dict[str, str], *keys: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", JOB, *keys],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.paths = [Path(self.process.stdout.readline().strip()) for _ in keys]
        assert all(p.is_file() for p in self.paths), self.paths

    def end(self) -> None:
        self.process.communicate(timeout=60)
        assert self.process.returncode == 0


def backdate(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_copies_past_the_cap_are_evicted_least_recently_used_first_never_one_in_use(
    s3_server: str, s3_bucket_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    upgrade_database(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        artifact_url=s3_bucket_url,
        s3_endpoint_url=s3_server,
        work_dir=str(tmp_path / "work"),
        download_cache_bytes=250,
    )
    env = {
        **os.environ,
        **S3_TEST_ENV,
        "DISTILLERY_DATABASE_URL": sqlite_url,
        "DISTILLERY_ARTIFACT_URL": s3_bucket_url,
        "DISTILLERY_S3_ENDPOINT_URL": s3_server,
        "DISTILLERY_WORK_DIR": settings.work_dir,
        "DISTILLERY_DOWNLOAD_CACHE_BYTES": "250",
    }
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    source = tmp_path / "upload"
    keys = {}
    for name in "abcd":
        source.write_bytes(name.encode() * 100)
        keys[name] = file_key(f"file_{name}", "upload")
        store.put_file(keys[name], source)

    copies = {}
    for name, age in (("a", 300), ("b", 200)):  # read by jobs that have ended
        job = Job(env, keys[name])
        job.end()
        copies[name] = job.paths[0]
        backdate(copies[name], age)
    reading = Job(env, keys["c"])  # the least recently used, but a running job reads it
    copies["c"] = reading.paths[0]
    backdate(copies["c"], 400)

    job = Job(env, keys["d"])  # 100 more bytes: 400 over a cap of 250
    copies["d"] = job.paths[0]
    job.end()
    assert {name for name, path in copies.items() if path.exists()} == {"c", "d"}
    assert copies["c"].read_bytes() == b"c" * 100
    assert not any(p.name.endswith(".partial") for p in settings.download_cache_root.rglob("*"))

    reading.end()
    report = collect_garbage(settings.model_copy(update={"download_cache_bytes": 100}))
    assert (report.download_cache.count, report.download_cache.bytes) == (1, 100)
    assert {name for name, path in copies.items() if path.exists()} == {"d"}
