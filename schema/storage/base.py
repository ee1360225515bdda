"""The storage interface: what every store offers, and the handle readers are given."""

from __future__ import annotations

import hashlib
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

READ_BLOCK = 1 << 20


class StorageError(Exception):
    """The store cannot do what was asked; the message names the store and what to do."""


class StoreUnreachable(StorageError):
    """The store did not answer (network, server down): try again later, nothing is lost."""


class StoreUnusable(StorageError):
    """The store cannot be used at all as configured (no such bucket): fix the config."""


class AccessRefused(StoreUnusable):
    """The store refused the credentials or the request (wrong keys, no permission)."""


@dataclass
class ObjectInfo:
    """One stored object: its key, size, SHA-256 (hex, when the store knows it) and version."""

    key: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    checksum: str | None = None  # the store's own SHA-256 checksum (base64; "-N" when of N parts)
    version_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Store(ABC):
    """A place objects go under keys. ``url`` is how the config names it."""

    url: str
    prefix: str = ""  # what every key of this store's sessions starts with (keys include it)

    def describe(self, key: str) -> str:
        """The full URL of ``key``, for messages and the ``path`` of a stored session."""
        return f"{self.url.rstrip('/')}/{key}"

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """What is stored under ``key``, or None."""

    @abstractmethod
    def open(self, key: str, size: int | None = None) -> BinaryIO:
        """A seekable binary reader; a remote store reads only the ranges asked for."""

    def read(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    @abstractmethod
    def put_file(self, key: str, path: str, sha256: str, size: int,
                 metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, str]:
        """Store the file at ``path`` (whose SHA-256 and size the caller computed) under
        ``key``; visible only once complete. Returns what was stored and how its size and
        SHA-256 were verified."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Store small ``data`` under ``key`` (verified like put_file)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``, every version of it; a key not there is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (size and key only)."""

    @abstractmethod
    def folders(self, prefix: str) -> list[str]:
        """The names one level below ``prefix/`` (the hosts under a store's prefix)."""

    def object_lock(self) -> str | None:
        """None when the store enforces legal holds itself, else why it cannot (said to users)."""
        return f"{self.url} has no object lock: holds are kept in the index only"

    def set_legal_hold(self, key: str, on: bool) -> bool:
        """Switch the store's legal hold on ``key``; False when the store has none."""
        return False

    def blob(self, key: str) -> Blob:
        return Blob(self, key)


@dataclass(frozen=True)
class Blob:
    """One object of one store, as a reader of recordings is handed it."""

    store: Store
    key: str

    @property
    def name(self) -> str:
        return self.store.describe(self.key)

    def open(self) -> BinaryIO:
        return self.store.open(self.key)

    def read(self) -> bytes:
        return self.store.read(self.key)

    def open_text(self) -> IO[str]:
        """A text reader, as ``open_cast`` reads a cast (it takes a Blob in place of a path)."""
        return io.TextIOWrapper(self.open(), encoding="utf-8", errors="replace", newline="\n")

    def stat(self) -> ObjectInfo | None:
        return self.store.stat(self.key)

    def sibling(self, suffix: str) -> Blob:
        """The object beside this one with another suffix: ``ID.cast`` -> ``ID.json``."""
        stem = self.key[: -len(".cast")] if self.key.endswith(".cast") else self.key
        return Blob(self.store, stem + suffix)

    def __str__(self) -> str:
        return self.name


def open_source(source: str | Blob) -> BinaryIO:
    """A binary reader of a local path or a stored object."""
    if isinstance(source, Blob):
        return source.open()
    return open(source, "rb")  # noqa: SIM115 - the caller closes it


def open_text(source: str | Blob) -> IO[str]:
    """A text reader of a local path or a stored object, as ``open_cast`` reads a cast."""
    if isinstance(source, Blob):
        return source.open_text()
    return open(source, encoding="utf-8", errors="replace", newline="\n")  # noqa: SIM115 - the caller closes it


def source_name(source: str | Blob) -> str:
    return source.name if isinstance(source, Blob) else source


def source_size(source: str | Blob) -> int:
    if isinstance(source, Blob):
        info = source.stat()
        if info is None:
            raise FileNotFoundError(2, "no such object", source.name)
        return info.size
    return os.path.getsize(source)


def sha256_of(handle: BinaryIO) -> tuple[str, int]:
    """(hex SHA-256, size) of everything ``handle`` still has to read."""
    digest = hashlib.sha256()
    size = 0
    while block := handle.read(READ_BLOCK):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size
