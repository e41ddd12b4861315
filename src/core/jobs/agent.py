"""`tunedeck agent`: the LocalBackend of a remote box (a SlurmBackend on a Slurm login node),
spoken as versioned JSON lines.

One request per line in, one response per line out, in order:
  {"v": 1, "seq": 7, "op": "status", "ids": ["k3f9qa"]}
  {"v": 1, "seq": 7, "ok": true, "result": {...}}   or   {"v": 1, "seq": 7, "ok": false,
  "error": {"type": "JobError", "message": "...", "hint": "..."}}
Log bytes travel base64-encoded. Nothing else is ever written to the protocol stream.
"""

from __future__ import annotations

import base64
import errno
import os
import platform
import sys
import time
from typing import Any, BinaryIO

import orjson

from tunedeck.core import __version__
from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.backend import DEFAULT_GRACE, JobSpec
from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.model import Job
from tunedeck.core.locations import state_dir

PROTOCOL = 1
MAX_LOG_CHUNK = 16 << 20
WAIT_POLL = 0.01


def serve_stdio(workdir: str | None = None) -> int:
    """Serve requests from stdin to stdout until stdin closes (the ssh channel went away)."""
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    if workdir:
        path = os.path.expanduser(workdir)
        os.makedirs(path, exist_ok=True)
        os.chdir(path)
    serve(sys.stdin.buffer, protocol_out)
    return 0


def serve(requests: BinaryIO, responses: BinaryIO, backend: LocalBackend | None = None) -> None:
    handler = _Handler(backend)
    for line in iter(requests.readline, b""):
        if not line.strip():
            continue
        responses.write(orjson.dumps(handler.answer(line)) + b"\n")
        responses.flush()


class _Handler:
    def __init__(self, backend: LocalBackend | None):
        self._backend = backend

    @property
    def backend(self) -> LocalBackend:
        """Opened on first use, so that a broken state dir is reported through the protocol."""
        if self._backend is None:
            from tunedeck.core.jobs.slurm import SlurmBackend

            self._backend = SlurmBackend.from_agent_env(dict(os.environ)) or LocalBackend()
        return self._backend

    def answer(self, line: bytes) -> dict[str, Any]:
        seq = None
        try:
            request = orjson.loads(line)
            seq = request.get("seq")
            if request.get("v") != PROTOCOL:
                return _error(seq, "ProtocolError", f"protocol {request.get('v')} not spoken here")
            op = getattr(self, "op_" + str(request.get("op")), None)
            if op is None:
                return _error(seq, "ProtocolError", f"unknown op {request.get('op')!r}")
            return {"v": PROTOCOL, "seq": seq, "ok": True, "result": op(request)}
        except TunedeckError as error:
            answer = _error(seq, type(error).__name__, error.message, error.hint)
            if error.location is not None:
                where = error.location
                answer["error"]["location"] = {"file": where.file, "column": where.column}
            return answer
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return _error(seq, "DiskFull", f"disk full: {error.filename or state_dir()}")
            return _error(seq, "OSError", str(error))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            return _error(seq, "ProtocolError", f"bad request: {error!r}")

    def op_hello(self, request: dict) -> dict:
        from tunedeck.core.jobs.host_check import llamafactory_report

        return {
            "protocol": PROTOCOL,
            "version": __version__,
            "hostname": platform.node(),
            "python": sys.executable,
            "workdir": os.getcwd(),
            "state_dir": str(state_dir()),
            "llamafactory": llamafactory_report(),
        }

    def op_submit(self, request: dict) -> dict:
        spec = request["spec"]
        job = self.backend.submit(JobSpec.from_dict(spec))
        return job.to_dict()

    def op_submit_array(self, request: dict) -> list:
        specs = [JobSpec.from_dict(doc) for doc in request["specs"]]
        return [job.to_dict() for job in self._slurm().submit_array(specs)]

    def op_preview(self, request: dict) -> str:
        return self._slurm().preview([JobSpec.from_dict(doc) for doc in request["specs"]])

    def op_slurm_info(self, request: dict) -> dict:
        return self._slurm().info().to_dict()

    def _slurm(self):
        if not hasattr(self.backend, "submit_array"):
            from tunedeck.core.errors import HostError

            raise HostError(
                "this host is not a Slurm host",
                hint="add it with `tunedeck hosts add NAME TARGET --slurm`",
            )
        return self.backend

    def op_status(self, request: dict) -> dict:
        jobs = self.backend.status(list(request["ids"]))
        found = {j.id for j in jobs}
        return {
            "jobs": [j.to_dict() for j in jobs],
            "missing": [i for i in request["ids"] if i not in found],
        }

    def op_list(self, request: dict) -> list:
        return [j.to_dict() for j in self.backend.list()]

    def op_read_log(self, request: dict) -> dict:
        """Bytes from `offset`; with `wait`, hold the answer up to that long for new bytes."""
        job = self._job(request)
        offset = int(request.get("offset", 0))
        limit = min(int(request.get("limit", MAX_LOG_CHUNK)), MAX_LOG_CHUNK)
        deadline = time.monotonic() + float(request.get("wait", 0))
        while True:
            job = self.backend.refresh(job)
            final = job.state.is_final  # read before the bytes: no byte after it is missed
            chunk = self.backend.read_log(job, offset, limit)
            if chunk.data or chunk.truncated or final or time.monotonic() >= deadline:
                break
            time.sleep(WAIT_POLL)
        return {
            "data": base64.b64encode(chunk.data).decode("ascii"),
            "offset": chunk.offset,
            "next_offset": chunk.next_offset,
            "size": chunk.size,
            "truncated": chunk.truncated,
            "final": final and chunk.next_offset >= chunk.size,
            "state": job.state.value,
        }

    def op_tail_offset(self, request: dict) -> int:
        return self.backend.tail_offset(self._job(request), int(request["lines"]))

    def op_cancel(self, request: dict) -> dict:
        grace = float(request.get("grace", DEFAULT_GRACE))
        return self.backend.cancel(self._job(request), grace).to_dict()

    def op_rm(self, request: dict) -> None:
        self.backend.remove(self._job(request))

    def op_metrics(self, request: dict) -> list:
        return [p.to_dict() for p in self.backend.metrics(self._job(request))]

    def op_watch_add(self, request: dict) -> dict:
        """Watch a run folder of this box (runs add --host)."""
        pid = request.get("pid")
        return self.backend.add_watched(
            str(request["output_dir"]),
            name=request.get("name"),
            log=request.get("log"),
            pid=None if pid is None else int(pid),
        ).to_dict()

    def op_watch_scan(self, request: dict) -> dict:
        """Add the new run folders under this box's watched `folders`."""
        found = self.backend.scan_watched([str(f) for f in request["folders"]])
        return {**found, "added": [job.to_dict() for job in found["added"]]}

    def op_gpus(self, request: dict) -> list:
        return [g.to_dict() for g in self.backend.gpus()]

    def op_store_have(self, request: dict) -> dict:
        from tunedeck.core.jobs.store import store_have

        return store_have(list(request["hashes"]), list(request.get("paths") or ()))

    def op_store_commit(self, request: dict) -> dict:
        from tunedeck.core.jobs.store import store_commit

        return store_commit(request.get("staging"), request["objects"], request["manifest"])

    def op_check_config(self, request: dict) -> dict:
        """Check a run's settings against this box (files, datasets, template, disk)."""
        from tunedeck.core.jobs.host_check import check_here

        return check_here(request["purpose"], request["settings"], request.get("min_free"))

    def op_prepared(self, request: dict) -> dict:
        """This box's prepared-data cache: listed, or the asked part removed."""
        from tunedeck.core.jobs.prepared_cache import prepared_here

        return prepared_here(
            request.get("remove"), request.get("older_than_s"), bool(request.get("clear"))
        )

    def _job(self, request: dict) -> Job:
        return self.backend.registry.find(str(request["id"]))


def _error(seq, kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {
        "v": PROTOCOL,
        "seq": seq,
        "ok": False,
        "error": {"type": kind, "message": message, "hint": hint},
    }
