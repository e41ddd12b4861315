"""The jobs tests use the private loopback sshd shared with the runner tests (tests/sshd_server.py)."""

from __future__ import annotations

from sshd_server import box_account, loop_host, remote_box, remote_home, sshd  # noqa: F401 - fixtures
