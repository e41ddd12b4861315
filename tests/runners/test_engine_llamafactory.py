"""engine llamafactory: `llamafactory-cli train|export CFG` as a tunedeck job, and its checks.

The slow tests train for real on the CPU through the reference venv's LLaMA-Factory (LoRA SFT
and DPO on the tiny model, two steps) and read its trainer_log.jsonl back as the job's metrics.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "config"))
import sshd_server  # noqa: E402
from llamafactory_examples import DATA, EXAMPLES, localised  # noqa: E402
from slurm_nodes import slurm_two_nodes  # noqa: E402,F401 - fixture

from tunedeck.core.config import check_config  # noqa: E402
from tunedeck.core.engines.llamafactory_host import (  # noqa: E402
    engine_env,
    find_install,
    installed_version,
)
from tunedeck.core.jobs import JobRegistry, JobState, get_backend  # noqa: E402
from tunedeck.core.jobs.backend import Resources  # noqa: E402
from tunedeck.core.jobs.metrics import read_job_metrics  # noqa: E402
from tunedeck.core.jobs.slurm import SlurmBackend  # noqa: E402
from tunedeck.core.runners.launch import launch_run, prepare_run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
fresh_account = sshd_server.fresh_account
fresh_host = sshd_server.fresh_host
SHORT = [
    "bf16=false", "max_steps=2", "logging_steps=1", "save_steps=100", "cutoff_len=64",
    "max_samples=8", "per_device_train_batch_size=1", "gradient_accumulation_steps=1",
    "preprocessing_num_workers=1", "dataloader_num_workers=0", "plot_loss=false",
    "template=default",
]  # fmt: skip


@pytest.fixture
def llamafactory(reference_python, monkeypatch) -> Path:
    """The reference venv, found as this host's LLaMA-Factory."""
    venv = reference_python.parent.parent
    monkeypatch.setenv("TUNEDECK_LLAMAFACTORY", str(venv))
    return venv


@pytest.fixture
def sft_yaml(tmp_path, tiny_model) -> Path:
    return localised(EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model)


def tunedeck(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_host_install_and_its_version_are_found(llamafactory):
    install = find_install()
    assert install is not None and install.version == "0.9.5"
    assert Path(install.cli) == llamafactory / "bin" / "llamafactory-cli"
    assert installed_version(llamafactory) == "0.9.5"


def test_no_install_is_one_error_at_the_engine_key(tmp_path, monkeypatch, sft_yaml):
    monkeypatch.setenv("TUNEDECK_LLAMAFACTORY", str(tmp_path / "no-venv"))
    check = check_config(sft_yaml, ["engine=llamafactory"])
    (error,) = check.errors
    assert error.key == "engine" and "not installed on this host" in error.message
    assert "--extras llamafactory" in error.hint


def test_a_typo_gets_a_did_you_mean_from_llamafactorys_keys(llamafactory, sft_yaml):
    check = check_config(sft_yaml, ["engine=llamafactory", "lora_rnak=4"], check_files=False)
    (error,) = check.errors
    assert (error.key, error.hint) == ("lora_rnak", "did you mean 'lora_rank'?")
    assert "LLaMA-Factory 0.9.5" in error.message


def test_a_key_no_engine_knows_names_both_engines_and_the_fix(llamafactory, sft_yaml):
    check_config(sft_yaml, ["engine=llamafactory"], check_files=False)  # its keys are read
    check = check_config(sft_yaml, ["lora_rnak=4"], check_files=False)
    error = next(e for e in check.errors if e.key == "lora_rnak")
    assert "neither the built-in engine nor LLaMA-Factory 0.9.5" in error.message
    assert error.hint == "did you mean 'lora_rank'?"


def test_auto_takes_llamafactory_for_a_feature_the_builtin_lacks_and_says_so(
    llamafactory, tmp_path, tiny_model
):
    loraplus = localised(
        EXAMPLES / "extras/loraplus/llama3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    check = check_config(loraplus, ["engine=auto"], check_files=False)
    assert check.ok, [str(e) for e in check.errors]
    assert check.config.engine == "llamafactory"
    (note,) = [p for p in check.warnings if p.key == "engine"]
    assert note.message == "engine auto: llamafactory (LLaMA-Factory 0.9.5), for loraplus_lr_ratio"


def test_auto_keeps_the_builtin_engine_when_it_serves_the_config(
    llamafactory, tmp_path, tiny_model
):
    dpo = localised(EXAMPLES / "train_lora/qwen3_lora_dpo.yaml", tmp_path, tiny_model, tiny_model)
    check = check_config(dpo, ["engine=auto"], check_files=False)
    assert check.ok and check.config.engine == "builtin"


def test_an_export_config_is_checked_as_one_without_being_told(llamafactory, tmp_path, tiny_model):
    merge = localised(EXAMPLES / "merge_lora/qwen3_gptq.yaml", tmp_path, tiny_model, tiny_model)
    check = check_config(merge, purpose=None, check_files=False)
    assert check.purpose == "export" and check.ok, [str(e) for e in check.errors]
    check = check_config(
        merge, ["engine=llamafactory", "bf16=true"], purpose=None, check_files=False
    )
    (error,) = check.errors  # export parses no TrainingArguments: bf16 is not an export key
    assert error.key == "bf16" and "LLaMA-Factory 0.9.5" in error.message


def test_prepare_run_builds_llamafactory_cli_on_the_yaml_without_tunedecks_keys(
    llamafactory, sft_yaml
):
    overrides = ["engine=llamafactory", "nproc_per_node=2", "max_steps=2"]
    check = check_config(sft_yaml, overrides, check_files=False)
    assert check.ok, [str(e) for e in check.errors]
    backend = get_backend(None)
    try:
        spec = prepare_run(
            "train", check.config, backend=backend, config_path=sft_yaml, overrides=overrides
        )
    finally:
        backend.close()
    cli, command, snapshot = spec.argv
    assert (Path(cli), command) == (llamafactory / "bin" / "llamafactory-cli", "train")
    sent = yaml.safe_load(Path(snapshot).read_text())
    written = yaml.safe_load(sft_yaml.read_text())
    assert sent == {**written, "max_steps": 2}  # the user's YAML, override applied, ours out
    assert spec.env["FORCE_TORCHRUN"] == "1" and spec.env["NPROC_PER_NODE"] == "2"
    assert spec.env["PATH"].split(":")[0] == str(llamafactory / "bin")  # its torchrun
    assert "--engine" not in spec.command_line and "engine=llamafactory" in spec.command_line


def test_engine_env_is_empty_for_one_process_and_names_the_nodes():
    assert engine_env(None) == {} and engine_env(1) == {}
    assert engine_env(4, nodes=2) == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "4", "NNODES": "2"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "example", ["train_lora/qwen3_lora_sft.yaml", "train_lora/qwen3_lora_dpo.yaml"]
)
def test_llamafactory_trains_two_steps_on_the_cpu_as_a_tunedeck_job(
    llamafactory, tmp_path, tiny_model, example
):
    config = localised(EXAMPLES / example, tmp_path, tiny_model, tiny_model)
    started = tunedeck("train", str(config), *SHORT, "--engine", "llamafactory", "--detach")
    assert started.returncode == 0, started.stderr
    job_id = started.stderr.split("job ", 1)[1].split()[0]
    waited = tunedeck("runs", "wait", job_id)
    assert waited.returncode == 0, tunedeck("runs", "logs", job_id).stdout[-3000:]

    registry = JobRegistry()
    try:
        job = registry.get(job_id)
    finally:
        registry.close()
    assert (job.state, job.exit_code) == ("succeeded", 0)
    assert Path(job.argv[0]).name == "llamafactory-cli" and job.argv[1] == "train"
    points = read_job_metrics(job)  # LLaMA-Factory's own trainer_log.jsonl
    assert [p.step for p in points if p.loss is not None] == [1, 2]
    assert all(math.isfinite(p.loss) for p in points if p.loss is not None)
    lines = Path(job.output_dir, "trainer_log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["total_steps"] == 2
    assert Path(job.output_dir, "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_hosts_check_reports_the_hosts_llamafactory_version(loop_host, reference_python):
    done = tunedeck("hosts", "check", loop_host.name, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["agent"]["llamafactory"]
    assert found is not None and found["version"] == "0.9.5"  # the host's ~/.cache/tunedeck/lf-*
    shown = tunedeck("hosts", "check", loop_host.name)
    assert f"LLaMA-Factory 0.9.5 ({found['cli']})" in shown.stdout


def _job(job_id: str):
    registry = JobRegistry()
    try:
        return registry.get(job_id)
    finally:
        registry.close()


@pytest.mark.slow
def test_a_cancel_stops_llamafactory_and_its_torchrun_ranks_as_a_tree(
    llamafactory, tmp_path, tiny_model
):
    config = localised(
        EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    long_run = [*SHORT, "max_steps=100000", "save_steps=100000", "nproc_per_node=2"]
    started = tunedeck("train", str(config), *long_run, "--engine", "llamafactory", "--detach")
    assert started.returncode == 0, started.stderr
    job_id = started.stderr.split("job ", 1)[1].split()[0]
    trainer_log = Path(_job(job_id).output_dir) / "trainer_log.jsonl"
    deadline = time.monotonic() + 300
    while not (trainer_log.is_file() and trainer_log.read_text().strip()):
        job = _job(job_id)
        assert job.state == "running", tunedeck("runs", "logs", job_id).stdout[-3000:]
        assert time.monotonic() < deadline, "no step logged"
        time.sleep(1)
    job = _job(job_id)
    assert job.argv[1] == "train" and "NPROC_PER_NODE" in job.env
    ranks = _descendants(job.pid)
    assert len(ranks) >= 3  # llamafactory-cli, torchrun, two ranks (in a session of their own)
    cancelled = tunedeck("runs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    tunedeck("runs", "wait", job_id)
    assert _job(job_id).state == "cancelled"
    assert [pid for pid in ranks if Path(f"/proc/{pid}").exists()] == []


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (by parent pid), wherever their group or session."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


@pytest.mark.slow
def test_llamafactory_trains_on_a_host_over_ssh(llamafactory, loop_host, tmp_path, tiny_model):
    config = localised(
        EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    argv = ["train", str(config), *SHORT, "--engine", "llamafactory", "--host", loop_host.name]
    started = tunedeck(*argv, "--no-sync", "--detach")
    assert started.returncode == 0, started.stderr
    job_id = started.stderr.split("job ", 1)[1].split()[0]
    waited = tunedeck("runs", "wait", job_id)
    assert waited.returncode == 0, tunedeck("runs", "logs", job_id).stdout[-3000:]
    job = _job(job_id)
    assert job.argv[2] == "tunedeck.core.engines.run"  # the host's wrapper execs the CLI
    losses = [p.loss for p in read_job_metrics(job) if p.loss is not None]
    assert len(losses) == 2


@pytest.mark.slow
def test_llamafactory_on_a_host_with_sync_trains_from_the_store_paths(
    llamafactory, loop_host, remote_home, tmp_path, tiny_model
):
    config = localised(
        EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    argv = ["train", str(config), *SHORT, "--engine", "llamafactory", "--host", loop_host.name]
    started = tunedeck(*argv, "--detach")  # sync on: model and data sent to the host's store
    assert started.returncode == 0, started.stderr
    job_id = started.stderr.split("job ", 1)[1].split()[0]
    waited = tunedeck("runs", "wait", job_id)
    assert waited.returncode == 0, tunedeck("runs", "logs", job_id).stdout[-3000:]
    job = _job(job_id)
    assert (job.state, job.exit_code) == ("succeeded", 0)
    inputs = Path(loop_host.workdir, ".tunedeck", "inputs")
    ran_here = remote_home.rglob("*-llamafactory.yaml")  # what the host's wrapper wrote
    (ran,) = [p for p in ran_here if str(tmp_path) in p.read_text()]  # this run's output_dir
    document = yaml.safe_load(ran.read_text())
    data = Path(document["dataset_dir"])  # the data folder's tree in the host's store
    assert (data.parent.parent, data.name) == (inputs, "data"), data
    assert (data / "dataset_info.json").is_file() and str(DATA) not in ran.read_text()
    written = yaml.safe_load(config.read_text())
    assert document["dataset"] == written["dataset"]
    # the same account: the host has the model at this very path, so it is named as written
    assert document["model_name_or_path"] == str(tiny_model)
    losses = [p.loss for p in read_job_metrics(job) if p.loss is not None]
    assert len(losses) == 2


@pytest.mark.slow
def test_llamafactory_trains_across_two_slurm_nodes_one_cli_per_node(
    llamafactory,
    slurm_two_nodes,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    config = localised(
        EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    overrides = [*SHORT, "engine=llamafactory"]
    check = check_config(config, overrides)
    assert check.ok, [str(e) for e in check.errors]
    backend = SlurmBackend("cluster2", env=slurm_two_nodes.env)
    job = launch_run(
        "train",
        check.config,
        host="cluster2",
        config_path=config,
        overrides=overrides,
        backend=backend,
        resources=Resources(nodes=2),
    )
    deadline = time.monotonic() + 600
    while not (job := backend.status([job.id])[0]).state.is_final:
        assert time.monotonic() < deadline, f"job still {job.state.value} {job.reason}"
        time.sleep(1)
    text = backend.read_log(job).data.decode()
    assert (job.state, job.exit_code) == (JobState.SUCCEEDED, 0), text[-4000:]
    script = Path(job.script_path).read_text()
    assert "NNODES=2" in script and 'NODE_RANK="$SLURM_NODEID"' in script
    # one launcher per node, each starting torchrun for its one process, both at n1's address
    assert text.count("Initializing 1 distributed tasks at: 127.0.0.2:") == 2
    lines = Path(check.config.output_dir, "trainer_log.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines if "loss" in json.loads(line)]
    assert [record["current_steps"] for record in logged] == [1, 2]  # rank 0 alone writes
    assert logged[0]["epoch"] == pytest.approx(0.125)  # 2 of 16 rows a step: a world of two


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_hosts_setup_installs_llamafactory_on_a_fresh_box_and_a_run_trains_there(
    fresh_host, tmp_path, tiny_model
):
    from tunedeck.core.jobs.setup import local_wheel

    wheel = local_wheel(tmp_path / "wheels")
    setup = ("hosts", "setup", "fresh", "--extras", "llamafactory", "--wheel", str(wheel))
    done = tunedeck(*setup, timeout=2000)  # from the index: LLaMA-Factory, torch and the rest
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installing LLaMA-Factory 0.9.5" in done.stderr
    checked = json.loads(tunedeck("hosts", "check", "fresh", "--json").stdout)
    found = checked["agent"]["llamafactory"]
    assert found["version"] == "0.9.5"
    assert (
        found["cli"]
        == f"{Path(fresh_host.workdir).parents[1]}/.cache/tunedeck/lf-0.9.5/bin/llamafactory-cli"
    )

    config = localised(
        EXAMPLES / "train_lora/qwen3_lora_sft.yaml", tmp_path, tiny_model, tiny_model
    )
    argv = ["train", str(config), *SHORT, "output_dir=saves/lf-box", "--engine", "llamafactory"]
    started = tunedeck(*argv, "--host", "fresh", "--detach")  # data and model synced there
    assert started.returncode == 0, started.stderr
    assert "synced:" in started.stderr
    job_id = started.stderr.split("job ", 1)[1].split()[0]
    waited = tunedeck("runs", "wait", job_id)
    logs = tunedeck("runs", "logs", job_id).stdout
    assert waited.returncode == 0, logs[-3000:]
    assert (_job(job_id).state, _job(job_id).exit_code) == ("succeeded", 0)
    assert logs.count("{'loss': ") == 2  # LLaMA-Factory's own step lines, from the box
