"""S3 and S3-compatible stores (SeaweedFS, MinIO, Ceph...) through boto3.

Checksums: botocore >= 1.36 sends CRC checksums on every upload and checks them on every
download unless told otherwise, which many non-AWS servers reject or do not return; here
both are "when_required", and sshrec sends its own SHA-256 (``x-amz-checksum-sha256``) with
every object and part, which the server checks on receipt.

Verification after an upload (``put_file``): the stored size must match, and the server's
SHA-256 checksum of the object must be the one computed here (for a multipart upload, the
composite checksum of the parts' SHA-256s, each of which the server checked on receipt).
A server that keeps no checksum gets the object read back and hashed instead. The whole
file's SHA-256 also goes along as metadata ``sha256``, so HEAD alone tells a stored object
from another (a second ``ship`` skips what is already there).

Reads (``open``) are ranged GETs: 64 KiB first (the first frame of ``play``), doubling up to
8 MiB while reading on, back to 64 KiB after a seek.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from .base import AccessRefused, ObjectInfo, StorageError, Store, StoreUnreachable, StoreUnusable, sha256_of

MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 16 << 20
MAX_PARTS = 10_000
UPLOAD_THREADS = 4
MIN_RANGE, MAX_RANGE = 64 << 10, 8 << 20
_REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken",
            "InvalidToken", "InvalidClientTokenId", "AuthorizationHeaderMalformed"}
_TRANSIENT = {"InternalError", "ServiceUnavailable", "SlowDown", "503", "500", "RequestTimeout"}
T = TypeVar("T")


def b64_sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def hex_to_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Store(Store):
    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{url!r}: no bucket; use s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self._client: Any = None
        self._versioned: bool | None = None

    # -- the client and its errors -----------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.endpoint_url)
        return self._client

    def where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def call(self, what: str, key: str, method: Callable[..., T], **params: Any) -> T:
        """One S3 request; botocore's exceptions become StorageError with a fix in the message."""
        import botocore.exceptions as bx

        try:
            return method(Bucket=self.bucket, **params)
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise AccessRefused(
                f"{self.url}: no usable S3 credentials ({exc}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials, or an instance role") from None
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                bx.ConnectionClosedError) as exc:
            raise StoreUnreachable(
                f"cannot reach the store {self.where()} for {self.url} ({exc}); nothing is lost: recordings "
                "stay in the spool and the next sshrec ship sends them") from None
        except bx.ClientError as exc:
            raise self._client_error(what, key, exc) from None
        except bx.BotoCoreError as exc:
            raise StorageError(f"{what} {self.describe(key)}: {exc}") from None

    def _client_error(self, what: str, key: str, exc: Any) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        message = error.get("Message") or code
        if code in _REFUSED:
            return AccessRefused(
                f"{self.url}: the store {self.where()} refused the request to {what} {self.describe(key)} "
                f"({code}: {message}); check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                "the profile) and that they may read and write this bucket")
        if code == "NoSuchBucket":
            return StoreUnusable(f"bucket {self.bucket!r} does not exist at {self.where()}: create it, or fix "
                                "storage = \"s3://BUCKET/PREFIX\" in the config")
        if code in _TRANSIENT:
            return StoreUnreachable(f"the store {self.where()} is not answering ({code}: {message}); "
                                    "recordings stay in the spool, the next sshrec ship sends them")
        failure = StorageError(f"{what} {self.describe(key)}: {code}: {message}")
        failure.code = code  # type: ignore[attr-defined]
        return failure

    # -- reading -----------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.call("read", key, self.client.head_object, Key=key, ChecksumMode="ENABLED")
        except StorageError as exc:
            if getattr(exc, "code", None) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        metadata = dict(head.get("Metadata") or {})
        return ObjectInfo(key, int(head["ContentLength"]), sha256=metadata.get("sha256"),
                          etag=str(head.get("ETag", "")).strip('"'), checksum=head.get("ChecksumSHA256"),
                          version_id=head.get("VersionId"), metadata=metadata)

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        return io.BufferedReader(RangeReader(self, key, size), buffer_size=MIN_RANGE)  # type: ignore[return-value]

    def get_range(self, key: str, start: int, end: int) -> tuple[bytes, int]:
        """Bytes ``start..end`` (inclusive) and the object's size."""
        response = self.call("read", key, self.client.get_object, Key=key, Range=f"bytes={start}-{end}")
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        data = response["Body"].read()
        return data, int(total) if total.isdigit() else start + len(data)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": prefix}
            if token:
                params["ContinuationToken"] = token
            page = self.call("list", prefix, self.client.list_objects_v2, **params)
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), etag=str(item.get("ETag", "")).strip('"'))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def folders(self, prefix: str) -> list[str]:
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        page = self.call("list", base, self.client.list_objects_v2, Prefix=base, Delimiter="/")
        return [str(p["Prefix"])[len(base):].strip("/") for p in page.get("CommonPrefixes", [])]

    # -- writing -----------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> ObjectInfo:
        digest = hashlib.sha256(data).hexdigest()
        self.call("write", key, self.client.put_object, Key=key, Body=data, ChecksumSHA256=hex_to_b64(digest),
                  Metadata={**(metadata or {}), "sha256": digest})
        info, _ = self._verify(key, len(data), digest, hex_to_b64(digest))
        return info

    def put_file(self, key: str, path: str, sha256: str, size: int,
                 metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, str]:
        meta = {**(metadata or {}), "sha256": sha256}
        if size <= MULTIPART_THRESHOLD:
            with open(path, "rb") as handle:
                self.call("write", key, self.client.put_object, Key=key, Body=handle, ContentLength=size,
                          ChecksumSHA256=hex_to_b64(sha256), Metadata=meta)
            return self._verify(key, size, sha256, hex_to_b64(sha256))
        composite = self._multipart(key, path, size, meta)
        return self._verify(key, size, sha256, composite)

    def _multipart(self, key: str, path: str, size: int, metadata: dict[str, str]) -> str:
        """Parts in parallel; nothing is visible under ``key`` until the upload is completed,
        and a failed one is aborted (a crashed one is aborted by the next attempt)."""
        self.abort_uploads(key)
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        created = self.call("write", key, self.client.create_multipart_upload, Key=key, Metadata=metadata,
                            ChecksumAlgorithm="SHA256")
        upload_id = created["UploadId"]
        fd = os.open(path, os.O_RDONLY)

        def send(number: int) -> dict[str, Any]:
            offset = (number - 1) * part_size
            data = os.pread(fd, min(part_size, size - offset), offset)
            checksum = b64_sha256(data)
            sent = self.call("write", key, self.client.upload_part, Key=key, UploadId=upload_id,
                             PartNumber=number, Body=data, ChecksumSHA256=checksum)
            return {"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": checksum}

        try:
            with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="sshrec-part") as pool:
                parts = list(pool.map(send, range(1, -(-size // part_size) + 1)))
            self.call("write", key, self.client.complete_multipart_upload, Key=key, UploadId=upload_id,
                      MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.call("write", key, self.client.abort_multipart_upload, Key=key, UploadId=upload_id)
            except StorageError:
                pass  # the next attempt aborts it
            raise
        finally:
            os.close(fd)
        joined = b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts)
        return f"{b64_sha256(joined)}-{len(parts)}"

    def abort_uploads(self, key: str) -> int:
        """Abort unfinished multipart uploads of ``key`` (left by a crash); how many."""
        listed = self.call("write", key, self.client.list_multipart_uploads, Prefix=key)
        stale = [u for u in listed.get("Uploads", []) if u.get("Key") == key]
        for upload in stale:
            self.call("write", key, self.client.abort_multipart_upload, Key=key, UploadId=upload["UploadId"])
        return len(stale)

    def _verify(self, key: str, size: int, sha256: str, checksum: str) -> tuple[ObjectInfo, str]:
        info = self.stat(key)
        if info is None:
            raise StorageError(f"{self.describe(key)}: not there right after it was uploaded (check the "
                               f"store {self.where()})")
        if info.size != size:
            raise StorageError(f"{self.describe(key)}: {info.size} bytes stored, {size} sent")
        if info.checksum and info.checksum.split("-")[0] == checksum.split("-")[0]:
            return info, "sha256-checksum"
        with self.open(key, info.size) as handle:
            stored, stored_size = sha256_of(handle)
        if stored != sha256 or stored_size != size:
            raise StorageError(f"{self.describe(key)}: what the store returns has SHA-256 {stored[:16]}…, "
                               f"{stored_size} bytes; sent {sha256[:16]}…, {size} bytes")
        return info, "download"

    def delete(self, key: str) -> None:
        if self.versioned():
            listed = self.call("delete", key, self.client.list_object_versions, Prefix=key)
            for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
                if item["Key"] == key:
                    self._delete_one(key, item["VersionId"])
        else:
            self._delete_one(key, None)

    def _delete_one(self, key: str, version: str | None) -> None:
        params = {"Key": key, **({"VersionId": version} if version else {})}
        try:
            self.call("delete", key, self.client.delete_object, **params)
        except AccessRefused as exc:
            raise AccessRefused(f"{exc} (an object under legal hold or retention cannot be deleted: "
                                "release its hold first, sshrec hold --release)") from None

    def versioned(self) -> bool:
        if self._versioned is None:
            state = self.call("read", "", self.client.get_bucket_versioning)
            self._versioned = state.get("Status") in ("Enabled", "Suspended")
        return self._versioned

    # -- object lock -------------------------------------------------------------------

    def object_lock(self) -> str | None:
        try:
            found = self.call("read", "", self.client.get_object_lock_configuration)
        except AccessRefused:
            raise
        except StorageError as exc:
            return (f"bucket {self.bucket} has no object lock ({getattr(exc, 'code', exc)}; S3 turns it on "
                    "only when a bucket is created, with --object-lock-enabled-for-bucket): holds are kept in "
                    "the index, and sshrec retention honours them, but the store itself would allow a delete")
        if found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled":
            return None
        return f"bucket {self.bucket} has object lock switched off: holds are kept in the index only"

    def set_legal_hold(self, key: str, on: bool) -> bool:
        self.call("hold", key, self.client.put_object_legal_hold, Key=key,
                  LegalHold={"Status": "ON" if on else "OFF"})
        return True


class RangeReader(io.RawIOBase):
    """An object as a seekable raw file: each read the store cannot serve from the last range
    fetches the next one (growing while reading on, small again after a seek)."""

    def __init__(self, store: S3Store, key: str, size: int | None) -> None:
        super().__init__()
        self.store, self.key, self.size = store, key, size
        self.pos = 0
        self.window_start = 0
        self.window = b""
        self.span = MIN_RANGE // 2
        self.requests = 0
        self.fetched = 0  # bytes read from the store (the tests check a seek reads little)

    @property
    def name(self) -> str:
        return self.store.describe(self.key)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self._size()
        elif whence == io.SEEK_CUR:
            offset += self.pos
        self.pos = max(offset, 0)
        return self.pos

    def _size(self) -> int:
        if self.size is None:
            info = self.store.stat(self.key)
            if info is None:
                raise FileNotFoundError(2, "no such object", self.name)
            self.size = info.size
        return self.size

    def readinto(self, buffer: Any) -> int:
        if self.size is not None and self.pos >= self.size:
            return 0
        offset = self.pos - self.window_start
        if not 0 <= offset < len(self.window):
            if not self._fetch(len(buffer)):
                return 0
            offset = 0
        count = min(len(buffer), len(self.window) - offset)
        buffer[:count] = self.window[offset : offset + count]
        self.pos += count
        return count

    def _fetch(self, wanted: int) -> bool:
        onward = self.pos == self.window_start + len(self.window) and self.window
        self.span = min(self.span * 2, MAX_RANGE) if onward else MIN_RANGE
        span = max(self.span, wanted)
        end = self.pos + span - 1
        if self.size is not None:
            end = min(end, self.size - 1)
        try:
            data, self.size = self.store.get_range(self.key, self.pos, end)
        except StorageError as exc:
            if getattr(exc, "code", None) == "InvalidRange":  # at or past the end (an empty object)
                self.size = self.pos if self.size is None else self.size
                return False
            if getattr(exc, "code", None) in ("NoSuchKey", "404"):
                raise FileNotFoundError(2, "no such object", self.name) from None
            raise
        self.requests += 1
        self.fetched += len(data)
        self.window_start, self.window = self.pos, data
        return bool(data)


def make_client(endpoint_url: str | None) -> Any:
    """An S3 client of botocore, boto3's core (the same credential chain: environment, shared
    credentials file, instance role), without boto3's transfer manager: its import alone
    would add ~110 ms to every ``sshrec play`` from the store. Checksums only when required,
    path-style addressing for a custom endpoint (what self-hosted servers expect)."""
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        raise StorageError("S3 storage needs boto3: pip install 'sshrec[s3]'") from None
    session = botocore.session.get_session()
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=UPLOAD_THREADS * 4,
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    region = session.get_config_variable("region") or ("us-east-1" if endpoint_url else None)
    return session.create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
