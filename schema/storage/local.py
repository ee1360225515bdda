"""A store in a local folder (``file:///DIR``): an archive on a mounted file system, and the
spool itself seen through the same API as S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import BinaryIO

from .base import ObjectInfo, StorageError, Store, sha256_of

DIR_MODE, FILE_MODE = 0o700, 0o600


class LocalStore(Store):
    def __init__(self, root: str) -> None:
        if not root.startswith("/"):
            raise StorageError(f"file://{root}: give an absolute folder, e.g. file:///srv/sshrec-archive")
        self.root = os.path.abspath(root)
        self.url = f"file://{self.root}"

    def path(self, key: str) -> str:
        path = os.path.normpath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise StorageError(f"{key!r} is not a key inside {self.url}")
        return path

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            info = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, info.st_size, etag=f"{info.st_mtime_ns}:{info.st_ino}")

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        return open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it

    def put_file(self, key: str, path: str, sha256: str, size: int,
                 metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, str]:
        with open(path, "rb") as source:
            return self._put(key, source), "download"

    def put_bytes(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> ObjectInfo:
        import io

        return self._put(key, io.BytesIO(data))

    def _put(self, key: str, source: BinaryIO) -> ObjectInfo:
        """Written to a temporary name, synced, renamed: never visible half-written."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), mode=DIR_MODE, exist_ok=True)
        tmp = f"{target}.tmp.{os.getpid()}"
        digest = hashlib.sha256()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with open(fd, "wb", closefd=False) as out:
                while block := source.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        with open(target, "rb") as check:
            stored, size = sha256_of(check)
        if stored != digest.hexdigest():
            raise StorageError(f"{self.describe(key)}: what was written reads back differently (disk fault?)")
        return ObjectInfo(key, size, sha256=stored)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass

    def folders(self, prefix: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.path(prefix) if prefix else self.root) if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.path(prefix) if prefix.strip("/") else self.root
        start = base if os.path.isdir(base) else os.path.dirname(base)
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in filenames:
                if ".tmp." in name:
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root)
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, os.path.getsize(full)))
        yield from sorted(found, key=lambda info: info.key)
