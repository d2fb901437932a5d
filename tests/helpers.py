"""Helpers the tests share: running the command line in-process, a free port on loopback."""

from __future__ import annotations

import socket

import pytest

from autoprune.cli import main

__all__ = ["free_port", "run_cli"]


def run_cli(*argv: str) -> int:
    """Run ``autoprune ARGV`` in this process; its exit status."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return int(info.value.code or 0)


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
