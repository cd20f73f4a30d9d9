"""A job's work files travel through an S3 store to the next host that runs the job."""

from pathlib import Path

from app.store.local import LocalStore
from app.store.s3 import S3Store
from worker import worksync


def test_a_second_host_pulls_what_the_first_pushed(
    s3_server: str, s3_bucket_url: str, tmp_path: Path
) -> None:
    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    first = tmp_path / "host-a" / "jobs" / "job_1"
    first.mkdir(parents=True)
    (first / "teacher.ckpt").write_bytes(b"teacher checkpoint, epoch 3")
    (first / "teacher.safetensors").write_bytes(b"teacher weights")
    assert worksync.push(store, "job_1", first / "teacher.ckpt") == "jobs/job_1/work/teacher.ckpt"
    worksync.push(store, "job_1", first / "teacher.safetensors")
    # A later epoch replaces the pushed checkpoint.
    (first / "teacher.ckpt").write_bytes(b"teacher checkpoint, epoch 4")
    worksync.push(store, "job_1", first / "teacher.ckpt")
    # Another job's work is not this job's.
    other = tmp_path / "host-a" / "jobs" / "job_2" / "student.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"other job")
    worksync.push(store, "job_2", other)

    second = tmp_path / "host-b" / "jobs" / "job_1"  # does not exist yet
    pulled = worksync.pull(store, "job_1", second)
    assert sorted(p.name for p in pulled) == ["teacher.ckpt", "teacher.safetensors"]
    assert (second / "teacher.ckpt").read_bytes() == b"teacher checkpoint, epoch 4"
    assert (second / "teacher.safetensors").read_bytes() == b"teacher weights"
    assert sorted(p.name for p in second.iterdir()) == ["teacher.ckpt", "teacher.safetensors"]

    # Pulling again changes nothing: the files are there.
    assert worksync.pull(store, "job_1", second) == []


def test_pull_keeps_the_files_a_host_already_has(
    s3_server: str, s3_bucket_url: str, tmp_path: Path
) -> None:
    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    source = tmp_path / "student.ckpt"
    source.write_bytes(b"pushed")
    worksync.push(store, "job_1", source)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "student.ckpt").write_bytes(b"local, newer")
    assert worksync.pull(store, "job_1", workdir) == []
    assert (workdir / "student.ckpt").read_bytes() == b"local, newer"


def test_nothing_to_pull_for_a_new_job(s3_server: str, s3_bucket_url: str, tmp_path: Path) -> None:
    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    assert worksync.pull(store, "job_new", tmp_path / "work") == []
    assert not (tmp_path / "work").exists()


def test_a_local_store_shares_the_work_folder_itself(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "artifacts"))
    checkpoint = tmp_path / "work" / "teacher.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"checkpoint")
    assert worksync.push(store, "job_1", checkpoint) is None
    assert store.list_keys("jobs/") == []
    assert worksync.pull(store, "job_1", tmp_path / "elsewhere") == []


def test_clear_removes_the_jobs_work_files_only(
    s3_server: str, s3_bucket_url: str, tmp_path: Path
) -> None:
    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    source = tmp_path / "student.ckpt"
    source.write_bytes(b"checkpoint")
    worksync.push(store, "job_1", source)
    worksync.push(store, "job_2", source)
    store.put_file("jobs/job_1/student.onnx", source)  # an artifact: kept
    worksync.clear(store, "job_1")
    assert store.list_keys("jobs/") == ["jobs/job_1/student.onnx", "jobs/job_2/work/student.ckpt"]
    worksync.clear(store, "job_1")  # nothing left to clear: no error


def test_clear_leaves_a_local_work_folder_alone(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "artifacts"))
    work = tmp_path / "artifacts" / "jobs" / "job_1" / "work" / "teacher.ckpt"
    work.parent.mkdir(parents=True)
    work.write_bytes(b"checkpoint")
    worksync.clear(store, "job_1")
    assert work.exists()
