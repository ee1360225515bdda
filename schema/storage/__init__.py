"""Where recordings live besides the spool: one small API over a local folder and S3.

Entry points (the player, ``sshrec ship``, retention and the TUI use only these):

- :func:`open_store` ``(url, endpoint_url=None) -> Store``: ``s3://BUCKET/PREFIX`` (boto3, the
  ``s3`` extra) or ``file:///DIR``. Credentials come the standard AWS way (environment, shared
  credentials file, instance role); nothing here stores them.
- :class:`Store`: ``stat(key)``, ``open(key)`` (a seekable binary file whose reads are ranged
  GETs, so a seek never downloads the whole object), ``read(key)``, ``put_file``/``put_bytes``
  (verified: size and SHA-256), ``delete(key)`` (every version), ``list(prefix)``,
  ``set_legal_hold(key, on)``, ``object_lock()``.
- :class:`Blob` (a store and a key) is what a reader is handed; :func:`open_source`,
  :func:`source_name` and :func:`source_size` accept a Blob or a plain local path, so code that
  reads a recording works the same on both.
- :mod:`.keys`: the stable key of each file of a session
  (``PREFIX/HOST/YYYY/MM/DD/ID.cast``, ``.json``, ``.chain``, ``.seek.json``).

Errors are :class:`StorageError`; :class:`StoreUnreachable` (try again later) and
:class:`StoreUnusable` (fix the config: no such bucket, or :class:`AccessRefused`, the
credentials) are the ones a caller treats differently. Messages name the store and the fix.
"""

from __future__ import annotations

from .base import (
    AccessRefused,
    Blob,
    ObjectInfo,
    StorageError,
    Store,
    StoreUnreachable,
    StoreUnusable,
    open_source,
    open_text,
    source_name,
    source_size,
)


def open_store(url: str, endpoint_url: str | None = None) -> Store:
    """The store a ``storage = "..."`` URL names."""
    if url.startswith("s3://"):
        from .s3 import S3Store

        return S3Store(url, endpoint_url)
    if url.startswith("file://"):
        from .local import LocalStore

        return LocalStore(url[len("file://"):])
    raise StorageError(f"{url!r} is not a storage URL: use s3://BUCKET/PREFIX or file:///DIRECTORY")


__all__ = ["AccessRefused", "Blob", "ObjectInfo", "Store", "StorageError", "StoreUnreachable", "StoreUnusable",
           "open_source", "open_store", "open_text", "source_name", "source_size"]
