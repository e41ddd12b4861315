# Two commands on a fresh machine: `make run` (the app on the example workspace) and `make test`
# (the suite; some tests read the example workspace, so it builds its demo model too).
# Each one creates or updates the virtual environment itself.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q
WORKSPACE := examples/workspace
TINY := $(WORKSPACE)/models/tiny
# torch 2.14.1: the `gptq` extra (GPTQModel) needs it. pip takes the CUDA build, which also runs
# on the CPU; set TORCH to pick another build (a CPU wheel index, a newer release).
TORCH ?= torch==2.14.1
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint bench venv sysdeps reference

run: venv $(TINY)/config.json
	$(VENV)/bin/tunedeck tui $(WORKSPACE)/data

test: venv sysdeps reference $(TINY)/config.json
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check src tests bench themes
	$(VENV)/bin/ruff format --check src tests bench themes

venv: $(VENV)/.installed

# LLaMA-Factory 0.9.5 in a venv of its own (never a dependency of tunedeck): the reference the
# equality tests compare with. Kept between runs; TUNEDECK_LF_VENV points elsewhere.
LF_VENV ?= $(or $(TUNEDECK_LF_VENV),$(HOME)/.cache/tunedeck/lf-0.9.5)
reference: $(LF_VENV)/.installed

$(LF_VENV)/.installed:
	test -x $(LF_VENV)/bin/python || python3 -m venv $(LF_VENV)
	$(LF_VENV)/bin/pip -q install llamafactory==0.9.5
	touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)"
	$(PIP) install -e '.[train,gptq,dev]'
	touch $@

# openssh-server and tmux: the SSH-backend and terminal end-to-end tests use real ones;
# g++: GPTQModel compiles a small CPU packing extension the first time it quantizes;
# slurm-wlm and munge: the Slurm tests start a real slurmctld and slurmd (tests/slurm_cluster.py).
sysdeps:
	@if ! test -x /usr/sbin/sshd || ! command -v tmux >/dev/null || ! command -v g++ >/dev/null || ! command -v rsync >/dev/null \
		|| ! test -x /usr/sbin/slurmctld || ! test -x /usr/sbin/slurmd || ! command -v sbatch >/dev/null || ! test -x /usr/sbin/munged; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openssh-server openssh-client tmux g++ rsync slurm-wlm munge; \
	fi

$(TINY)/config.json: venv
	$(VENV)/bin/tunedeck demo model $(TINY)
