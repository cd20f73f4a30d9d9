"""A folder under a byte cap: least recently used entries go first, never one in use, and
partial writes of dead writers are swept; writers and readers are real processes here."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.capped_folder import CappedFolder

ROOT = Path(__file__).resolve().parents[2]


def entry(folder: CappedFolder, name: str, size: int, age_ns: int) -> None:
    """An entry of `size` bytes, last used `age_ns` before a fixed moment in the past (its
    mtime set, not slept for)."""
    folder.add(name, size, lambda f: f.write(name[0].encode() * size)).close()
    when = 1_700_000_000_000_000_000 - age_ns
    os.utime(folder.path(name), ns=(when, when))


def names(folder: CappedFolder) -> list[str]:
    return sorted(p.name for p in folder.root.iterdir())


def child(code: str, folder: Path) -> subprocess.Popen[str]:
    """A Python process running `code` with `folder` as argv[1]."""
    return subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_writing_evicts_the_least_recently_used_until_the_new_entry_fits(
    tmp_path: Path,
) -> None:
    folder = CappedFolder(tmp_path, max_bytes=300)
    entry(folder, "a", 100, age_ns=3_000)
    entry(folder, "b", 100, age_ns=2_000)
    entry(folder, "c", 100, age_ns=1_000)
    reading = folder.open("a")  # a read makes `a` the most recently used
    assert reading is not None and reading.read() == b"a" * 100
    reading.close()

    folder.add("d", 100, lambda f: f.write(b"d" * 100)).close()
    assert names(folder) == ["a", "c", "d"]
    folder.add("e", 150, lambda f: f.write(b"e" * 150)).close()
    assert names(folder) == ["d", "e"]  # c, then a (read before d was written)
    assert folder.path("e").read_bytes() == b"e" * 150


def test_an_entry_in_use_is_kept_until_it_is_let_go(tmp_path: Path) -> None:
    folder = CappedFolder(tmp_path, max_bytes=200)
    entry(folder, "old", 100, age_ns=5_000)
    reading = folder.open("old")
    assert reading is not None
    entry(folder, "new", 100, age_ns=1_000)
    folder.add("newest", 100, lambda f: f.write(b"n" * 100)).close()
    assert names(folder) == ["newest", "old"]  # "new" went instead of the pinned "old"
    assert reading.read() == b"o" * 100
    reading.close()
    freed = folder.make_room()
    assert (freed.count, freed.bytes) == (0, 0)  # at the cap: nothing to do
    folder.max_bytes = 100
    freed = folder.make_room()
    assert (freed.count, freed.bytes, names(folder)) == (1, 100, ["newest"])


def test_an_entry_another_process_maps_is_not_evicted_nor_changed(tmp_path: Path) -> None:
    folder = CappedFolder(tmp_path, max_bytes=1000)
    entry(folder, "pinned", 600, age_ns=9_000)
    # It says "ready" once it has the entry mapped, and checks it when its stdin closes.
    reader = child(
        "import mmap, sys\n"
        "from pathlib import Path\n"
        "from app.capped_folder import CappedFolder\n"
        "f = CappedFolder(Path(sys.argv[1]), 1000).open('pinned')\n"
        "view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
        "f.close()  # the map alone keeps the pin\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
        "print(view[:] == b'p' * 600, flush=True)\n",
        tmp_path,
    )
    assert reader.stdout is not None and reader.stdin is not None
    assert reader.stdout.readline().strip() == "ready"
    folder.add("big", 900, lambda f: f.write(b"b" * 900)).close()
    assert names(folder) == ["big", "pinned"]  # over the cap rather than take it away
    reader.stdin.close()
    assert reader.stdout.readline().strip() == "True"
    assert reader.wait(timeout=30) == 0
    # Its reader gone, the entry is the least recently used and goes at the next write.
    folder.add("small", 100, lambda f: f.write(b"s" * 100)).close()
    assert names(folder) == ["big", "small"]


def test_a_dead_writers_partial_file_is_swept_a_live_ones_is_not(tmp_path: Path) -> None:
    folder = CappedFolder(tmp_path, max_bytes=10**6)
    # It says "ready" halfway through writing an entry, and writes on for ten minutes.
    writer = child(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from app.capped_folder import CappedFolder\n"
        "def write(f):\n"
        "    f.write(b'x' * 1000); f.flush()\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(600)\n"
        "CappedFolder(Path(sys.argv[1]), 10**6).add('entry', 1000, write)\n",
        tmp_path,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        (partial,) = tmp_path.iterdir()
        assert partial.name.startswith(".entry.") and partial.name.endswith(".partial")
        freed = folder.sweep_partials()
        assert (freed.count, partial.exists()) == (0, True)  # its writer is alive
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    freed = folder.sweep_partials()
    assert (freed.count, freed.bytes) == (1, 1000)
    assert names(folder) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = CappedFolder(tmp_path, max_bytes=1000)

    def broken(f: object) -> None:
        raise RuntimeError("the teacher crashed")

    with pytest.raises(RuntimeError, match="teacher crashed"):
        folder.add("entry", 100, broken)
    assert names(folder) == []
    assert folder.open("entry") is None
