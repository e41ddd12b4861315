"""Env values (tokens given with -e) are masked in what a user sees, kept whole for the job."""

from __future__ import annotations

from tunedeck.core.jobs.model import MASK, Job, mask_env

SECRET = "hf_SECRETsecretSECRET"


def _job() -> Job:
    return Job(id="abc123", name="n", argv=("true",), env={"HF_TOKEN": SECRET, "SEED": "1"})


def test_public_dict_masks_every_env_value_and_to_dict_keeps_them():
    job = _job()
    assert job.to_public_dict()["env"] == {"HF_TOKEN": MASK, "SEED": MASK}
    assert SECRET not in repr(job.to_public_dict())
    assert job.to_dict()["env"]["HF_TOKEN"] == SECRET


def test_reveal_shows_the_values():
    job = _job()
    assert job.to_public_dict(reveal_env=True)["env"]["HF_TOKEN"] == SECRET
    assert mask_env(job.env, reveal=True) == job.env


def test_masked_job_carries_no_secret():
    assert SECRET not in repr(_job().masked())
    assert _job().masked(reveal_env=True).env["HF_TOKEN"] == SECRET
