"""`MlflowServer`: a real ``mlflow server`` over a project's store, started in its own process group.

One worker, job execution off (≈ 11 s and 0.5 GB instead of ≈ 26 s and 1.8 GB), bound to 127.0.0.1
unless told otherwise, and stopped by process group so no worker is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import TrackingError, UsageError
from ._client import sqlite_path
from ._relocate import check_in_place

__all__ = ["MlflowServer"]


class MlflowServer:
    """Start with `start` (or as a context manager), stop with `stop`.

    Args:
        uri: Backend store URI (the tracking URI of the pipelines whose runs it shows).
        host: Interface to bind; 127.0.0.1 keeps the UI on this machine.
        port: TCP port.
        log_file: Where the server's output goes (default: discarded).
    """

    def __init__(self, uri: str, *, host: str = "127.0.0.1", port: int = 5000, log_file: Path | None = None) -> None:
        self.uri = uri
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.uri,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        database = sqlite_path(self.uri)
        if database is not None:  # new experiments keep their artifacts beside the database, as ours do
            command += ["--default-artifact-root", (database.parent / "artifacts").resolve().as_uri()]
        if self.host not in ("127.0.0.1", "localhost"):
            command += ["--allowed-hosts", f"{self.host},{self.host}:{self.port},localhost,127.0.0.1"]
        return command

    def _check_port_free(self) -> None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise UsageError(
                    f"cannot serve on {self.url}: {exc.strerror} (another server?); choose --port"
                ) from exc

    def start(self, *, timeout_s: float = 90.0) -> MlflowServer:
        """Start the server and wait until it answers; stop it again if anything goes wrong (Ctrl-C too)."""
        database = sqlite_path(self.uri)
        if database is not None and not database.is_file():
            raise TrackingError(f"no tracking store at {database}: run a pipeline first (autoprune run ...)")
        if database is not None:
            check_in_place(database)
        self._check_port_free()
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        if self.log_file:
            with open(self.log_file, "ab") as output:  # the child keeps its own copy of the handle
                self.process = subprocess.Popen(
                    self.command(), env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TrackingError(
                    f"mlflow server exited with status {self.process.returncode} (is port {self.port} free?)"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TrackingError(f"mlflow server did not answer on {self.url} within {timeout_s:.0f} s")

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        """Terminate the whole process group (server and workers); kill it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
