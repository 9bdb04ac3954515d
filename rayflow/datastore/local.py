"""LocalStorage: the datastore on this machine's disk (the default, `./.rayflow`).

It owns how bytes become files: every write goes to a temporary file in the same folder and is
renamed over the final name (`atomic_write`), so a reader, or a crash, never sees half an
object. It must never leave temporary files visible to `list`, never write outside its root, and
never import ray.

Writes are not fsync'ed: the commit protocol above protects against a crashed *process*; paying
an fsync per object would make 100,000 tiny tasks cost disk latency, not work.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from typing import IO

from rayflow.datastore.storage import BytesLike, DataStoreStorage, check_relative_path
from rayflow.exceptions import DataStoreError

TEMP_PREFIX = ".tmp-"
# What the datastore probe writes before a run starts: enough to need a block of the disk.
PROBE_BYTES = 8192


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Files are created as any other tool's are: read-write for everyone the umask allows.
_FILE_MODE = 0o666 & ~_umask()

_HINTS = {
    errno.ENOSPC: "The disk is full: free some space, or pass --datastore with a folder on "
                  "another disk.",
    errno.EDQUOT: "Your disk quota is used up: free some space, or pass --datastore with a "
                  "folder elsewhere.",
    errno.EACCES: "You may not write there: fix the folder's permissions, or pass "
                  "--datastore with a folder you own.",
    errno.EPERM: "You may not write there: fix the folder's permissions, or pass "
                 "--datastore with a folder you own.",
    errno.EROFS: "The file system is read-only: pass --datastore with a writable folder.",
    errno.ENOTDIR: "A file stands where the datastore needs a folder: move the file, or pass "
                   "--datastore with another folder.",
    errno.EEXIST: "A file stands where the datastore needs a folder: move the file, or pass "
                  "--datastore with another folder.",
}


@contextlib.contextmanager
def storage_errors(root: str, doing: str) -> Iterator[None]:
    """Turn an OSError of the local disk into the datastore error a user can act on; a
    missing file stays a FileNotFoundError (the layers above expect one)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        hint = _HINTS.get(exc.errno, "Check the folder, or pass --datastore with another one.")
        where = f" ({exc.filename})" if exc.filename and exc.filename != root else ""
        raise DataStoreError(
            f"Cannot {doing} in the datastore {root}{where}: {exc.strerror or exc}. "
            f"{hint}") from None


@contextlib.contextmanager
def atomic_write(final_path: str) -> Iterator[IO[bytes]]:
    """Yield a binary file; on a clean exit it replaces `final_path` in one rename.

    On an error the temporary file is removed and `final_path` keeps its old contents."""
    folder = os.path.dirname(final_path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600 files; others on the folder must read
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp_path, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


class LocalStorage(DataStoreStorage):
    """A datastore rooted at a local folder. The folder is created on the first write."""

    # Local writes are short syscalls (tens of microseconds): a thread pool costs more in
    # hand-offs than it saves, measured at 5,000 task records. Large blobs are written by one
    # call each anyway.
    max_workers = 1

    def __init__(self, root: str):
        root = os.path.abspath(os.path.expanduser(root))
        super().__init__(root)
        self.root = root

    def __reduce__(self):
        return (type(self), (self.root,))

    @property
    def is_local(self) -> bool:
        return True

    def _full(self, path: str) -> str:
        rel = check_relative_path(path, self.url)
        return os.path.join(self.root, *rel.split("/")) if rel else self.root

    def put(self, path: str, data: BytesLike) -> None:
        with storage_errors(self.root, f"write {path}"), atomic_write(self._full(path)) as f:
            f.write(data)  # a memoryview is written as is, without a copy

    def put_file(self, path: str, local_path: str) -> None:
        with storage_errors(self.root, f"write {path}"), \
                atomic_write(self._full(path)) as out, open(local_path, "rb") as src:
            while chunk := src.read(8 << 20):
                out.write(chunk)

    def get(self, path: str) -> bytes:
        full = self._full(path)
        try:
            with storage_errors(self.root, f"read {path}"), open(full, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(
                f"No object {path!r} in datastore {self.url} (looked for file {full}).") from None

    def check_writable(self) -> None:
        """Write a few KiB and fsync them: a file system that is full still creates an empty
        file, and some (ext4, XFS) only refuse the bytes when they reach the disk."""
        probe = f".probe-{os.getpid()}"  # a name of its own: runs may start side by side
        with storage_errors(self.root, "write a probe file"), \
                atomic_write(self._full(probe)) as f:
            f.write(b"rayflow" * (PROBE_BYTES // 7 + 1))
            f.flush()
            os.fsync(f.fileno())
        self.delete(probe)

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._full(path))

    def list(self, prefix: str = "") -> list[str]:
        try:
            with os.scandir(self._full(prefix)) as entries:
                names = [e.name for e in entries if not e.name.startswith(TEMP_PREFIX)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(names)

    def walk(self, prefix: str) -> list[str]:
        base = self._full(prefix)
        out: list[str] = []
        for folder, _, files in os.walk(base):
            rel = os.path.relpath(folder, base)
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    out.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
        return sorted(out)

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError), storage_errors(self.root, f"delete {path}"):
            os.remove(self._full(path))
