"""Run by a host's LLaMA-Factory python (never imported by tunedeck): what that install knows.

`keys` prints its version and every field name of its argument dataclasses, as JSON.
`check PURPOSE FILE...` runs LLaMA-Factory's own argument parsing on each YAML/JSON file
(get_train_args for train, get_infer_args for export) and prints one verdict per file: ok, or
the exception's type and message. Standard library plus llamafactory only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys

KEY_GROUPS = {
    "ModelArguments": "model_args",
    "DataArguments": "data_args",
    "TrainingArguments": "training_args",
    "FinetuningArguments": "finetuning_args",
    "GeneratingArguments": "generating_args",
}


def known_keys() -> dict:
    """The install's version and its argument dataclasses' field names, by class."""
    import llamafactory
    from llamafactory import hparams

    groups = {
        name: sorted(field.name for field in dataclasses.fields(getattr(hparams, name)))
        for name in KEY_GROUPS
    }
    return {"version": llamafactory.__version__, "python": sys.executable, "keys": groups}


def check_files(purpose: str, paths: list[str]) -> list[dict]:
    """LLaMA-Factory's verdict on each file, parsed as `llamafactory-cli train|export` would."""
    from llamafactory.hparams import get_infer_args, get_train_args

    parse = get_train_args if purpose == "train" else get_infer_args
    verdicts = []
    for path in paths:
        verdicts.append({"path": path, **_verdict(parse, path)})
    return verdicts


def _verdict(parse, path: str) -> dict:
    try:
        args = _read(path)
        with contextlib.redirect_stdout(io.StringIO()):
            parse(args)
    except BaseException as exc:  # SystemExit from argparse, ImportError, ValueError, ...
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"ok": False, "error": type(exc).__name__, "message": _first_lines(exc)}
    return {"ok": True}


def _read(path: str) -> dict:
    from omegaconf import OmegaConf

    if path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return OmegaConf.to_container(OmegaConf.load(os.path.abspath(path)))


def _first_lines(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return "\n".join(text.splitlines()[:6])


def main(argv: list[str]) -> int:
    if argv[:1] == ["keys"]:
        print(json.dumps(known_keys()))
        return 0
    if len(argv) >= 2 and argv[0] == "check" and argv[1] in ("train", "export"):
        print(json.dumps(check_files(argv[1], argv[2:])))
        return 0
    print("usage: llamafactory_probe.py keys | check train|export FILE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
