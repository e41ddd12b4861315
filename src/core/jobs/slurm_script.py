"""The sbatch script tunedeck writes for a job (or a job array) and keeps with the run.

Every resource is an `#SBATCH` line, so the script alone says what was asked for. The body runs
the job's argv in the background and waits; the time-limit signal (`--signal=B:TERM@N`, sent to
this shell only) and a cancel's `scancel --batch --signal=TERM` are passed once to the whole
process group, so the runner saves a checkpoint (a preemption's TERM to every process reaches the
runner twice: it takes the second as the same stop). With requeue, a run stopped by Slurm's
signal (not by a cancel) puts itself back in the queue, and its next start resumes from the
checkpoint.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunedeck.core.jobs.backend import Resources

DEFAULT_SIGNAL_LEAD = 120  # seconds before the time limit the runner is told to stop
RESUME_ARG = "resume_from_checkpoint=true"
# What multi-node launch lines append to `python -m module`: this task's runner arguments (an
# array task's own) and, on a restart, the resume argument, as the script's body expands them.
TASK_RUNNER_ARGS = '"${ARGV[@]:3}" "${RESUME[@]}"'


@dataclass(frozen=True)
class ScriptTask:
    """One job of the script (one array task): what it runs, where, and its own files."""

    job_id: str
    argv: tuple[str, ...]
    cwd: str
    exit_path: str  # "<code> <why>" written when the job ends ("timelimit", "cancel" or "")
    cancel_path: str  # exists once a cancel was asked for: no requeue then
    env: dict[str, str] = field(default_factory=dict)
    resumable: bool = False  # a runner that takes resume_from_checkpoint=true
    output_dir: str | None = None  # where its checkpoint-N folders are


@dataclass(frozen=True)
class ScriptOptions:
    """What applies to the whole submission."""

    name: str
    log_path: str  # Slurm's --output/--error; `%a` stands for the array task index
    resources: Resources = field(default_factory=Resources)
    signal_lead: int = DEFAULT_SIGNAL_LEAD
    body: tuple[str, ...] | None = None  # bash lines that replace the plain run (multi-node)


def render_script(tasks: Sequence[ScriptTask], options: ScriptOptions) -> str:
    """The whole sbatch script: header, #SBATCH lines, per-task settings, the runner."""
    if not tasks:
        raise ValueError("a script needs at least one task")
    ids = ", ".join(task.job_id for task in tasks)
    lines = [
        "#!/bin/bash",
        f"# tunedeck job {_comment(options.name)} ({ids}): written by tunedeck, kept with the run",
        *(f"#SBATCH {flag}" for flag in sbatch_flags(options, len(tasks))),
        "",
        "set -u",
        'case "${SLURM_ARRAY_TASK_ID:-0}" in',
    ]
    for index, task in enumerate(tasks):
        lines.append(f"  {index})")
        lines += [f"    {line}" for line in _task_lines(task)]
        lines.append("    ;;")
    lines += [
        '  *) echo "tunedeck: no task ${SLURM_ARRAY_TASK_ID} in this script" >&2; exit 2 ;;',
        "esac",
        "",
        *_run_lines(options),
    ]
    return "\n".join(lines) + "\n"


def sbatch_flags(options: ScriptOptions, task_count: int = 1) -> list[str]:
    """The sbatch options of the submission, as `--flag=value` words."""
    res = options.resources
    flags = [
        f"--job-name={_word(options.name)}",
        f"--output={options.log_path}",
        f"--error={options.log_path}",
        "--open-mode=append",  # a requeued run adds to its log: offsets stay valid
        f"--signal=B:TERM@{int(options.signal_lead)}",
        f"--nodes={res.nodes}",
        "--requeue" if res.requeue else "--no-requeue",
    ]
    optional = {
        "--gpus-per-node": res.gpus_per_node,
        "--time": res.time,
        "--mem": res.mem,
        "--cpus-per-task": res.cpus_per_task,
        "--partition": res.partition,
        "--account": res.account,
        "--qos": res.qos,
    }
    flags += [f"{flag}={value}" for flag, value in optional.items() if value not in (None, "")]
    if res.nodes > 1 or (res.gpus_per_node or 0) > 1:
        flags.append("--ntasks-per-node=1")  # one torchrun per node starts the ranks
    if res.hold:
        flags.append("--hold")
    if task_count > 1:
        flags.append(f"--array=0-{task_count - 1}")
    for flag in flags:
        if any(c in flag for c in "\n\r\0") or " " in flag:
            raise ValueError(f"sbatch option {flag!r} holds a space or a line break")
    return flags


def _task_lines(task: ScriptTask) -> list[str]:
    lines = [
        f"TUNEDECK_JOB_ID={shlex.quote(task.job_id)}",
        f"TUNEDECK_EXIT={shlex.quote(task.exit_path)}",
        f"TUNEDECK_CANCEL={shlex.quote(task.cancel_path)}",
        f"TUNEDECK_RESUMABLE={1 if task.resumable and task.output_dir else 0}",
        f"TUNEDECK_OUTPUT_DIR={shlex.quote(task.output_dir or '')}",
        f"cd {shlex.quote(task.cwd)} || exit 1",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in task.env.items()]
    lines.append(f"ARGV=({' '.join(shlex.quote(part) for part in task.argv)})")
    return lines


def _run_lines(options: ScriptOptions) -> list[str]:
    """Start the job, pass one TERM to its process group, requeue after a time-limit stop."""
    requeue = 1 if options.resources.requeue else 0
    start = ['"${ARGV[@]}" "${RESUME[@]}" &']
    if options.body:  # lines that start the job across nodes (srun + torchrun), backgrounded
        start = ["run_job() {", *(f"  {line}" for line in options.body), "}", "run_job &"]
    return [
        'rm -f "$TUNEDECK_EXIT"',
        "RESUME=()",
        # A restart (requeue, preemption) resumes from the last checkpoint, if one was saved.
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && [ "$TUNEDECK_RESUMABLE" = 1 ] \\',
        '    && ls -d "$TUNEDECK_OUTPUT_DIR"/checkpoint-* >/dev/null 2>&1; then',
        f"  RESUME=({RESUME_ARG})",
        '  echo "tunedeck: restart ${SLURM_RESTART_COUNT}: resuming from the last checkpoint"',
        "fi",
        'STOPPED=""',
        # The shell ignores later TERMs so that the runner gets exactly one.
        "trap 'STOPPED=1; trap \"\" TERM; kill -TERM 0' TERM",
        *start,
        "CHILD=$!",
        'while kill -0 "$CHILD" 2>/dev/null; do wait "$CHILD"; done',
        'wait "$CHILD"; CODE=$?',
        'WHY=""',
        'if [ -e "$TUNEDECK_CANCEL" ]; then WHY=cancel; elif [ -n "$STOPPED" ]; then WHY=timelimit; fi',
        # (a run that finished its last step as the signal came is done: no requeue)
        f'if [ "$WHY" = timelimit ] && [ "$CODE" != 0 ] && [ {requeue} = 1 ]; then',
        # (a preemption in PreemptMode=REQUEUE has Slurm requeue it itself: "Job is pending
        # execution", Slurm's ESLURM_JOB_PENDING, means it is in the queue already)
        '  if REFUSED="$(scontrol requeue "$SLURM_JOB_ID" 2>&1)" \\',
        '      || [[ "$REFUSED" == *"pending execution"* ]]; then',
        '    echo "tunedeck: stopped by Slurm (time limit or preemption); requeued to resume"',
        "    exit 0",
        "  fi",
        '  echo "$REFUSED"',
        '  echo "tunedeck: stopped by Slurm; it refused the requeue: resume with tunedeck runs resume"',
        "fi",
        'echo "$CODE $WHY" > "$TUNEDECK_EXIT"',
        'exit "$CODE"',
    ]


def _word(text: str) -> str:
    """A job name sbatch reads as one word."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) or "tunedeck"


def _comment(text: str) -> str:
    return " ".join(text.split())
