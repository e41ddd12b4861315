import subprocess
import sys
import textwrap

import pytest

from tunedeck.core.errors import JobError
from tunedeck.core.jobs import Job, JobRegistry, JobState

WRITER = textwrap.dedent(
    """
    import sys
    from tunedeck.core.jobs.registry import JobRegistry
    path, job_id, tag = sys.argv[1:]
    registry = JobRegistry(path)
    for i in range(1000):
        registry.update(job_id, lambda j: j.evolve(env={**j.env, f"{tag}{i}": "x"}))
        registry.set(job_id + tag, message=str(i))
    """
)


@pytest.mark.slow
def test_two_processes_updating_the_same_job_lose_no_update(tmp_path):
    path = tmp_path / "jobs.db"
    registry = JobRegistry(path)
    registry.add(Job(id="shared", name="s", argv=("true",)))
    for tag in ("a", "b"):
        registry.add(Job(id="shared" + tag, name=tag, argv=("true",)))
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "shared", tag])
        for tag in ("a", "b")
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    env = registry.get("shared").env
    assert len(env) == 2000
    assert {f"{t}{i}" for t in "ab" for i in range(1000)} == set(env)
    assert registry.get("shareda").message == "999"
    assert registry.get("sharedb").message == "999"


def test_registry_uses_wal_and_survives_reopening(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.db")
    registry.add(Job(id="abc123", name="n", argv=("echo", "hi"), env={"K": "v"}))
    assert registry._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = JobRegistry(tmp_path / "jobs.db").get("abc123")
    assert again.argv == ("echo", "hi") and again.env == {"K": "v"}
    assert again.state is JobState.QUEUED


def test_job_ids_are_found_by_unique_prefix_and_ambiguity_is_an_error(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.db")
    for job_id in ("k3f9qa", "k3f9zz", "m00001"):
        registry.add(Job(id=job_id, name=job_id, argv=("true",)))
    assert registry.find("m").id == "m00001"
    assert registry.find("K3F9Q").id == "k3f9qa"
    with pytest.raises(JobError, match="several"):
        registry.find("k3f9")
    with pytest.raises(JobError, match="no job"):
        registry.find("zzz")


def test_new_ids_are_short_and_typeable(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.db")
    ids = {registry.new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 6 and i.isalnum() and i == i.lower() for i in ids)
    assert not any(c in i for i in ids for c in "ilou")
