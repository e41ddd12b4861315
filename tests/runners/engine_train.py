"""Train every case of a JSON file with tunedeck's runner, in one process (the counterpart of
reference_train.py): `python engine_train.py CASES.json OUT.json`, the same output shape."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

BATCHES_KEPT = 2


def main(cases_path: str, out_path: str) -> None:
    import transformers
    import yaml

    from tunedeck.core.config import load_config
    from tunedeck.core.runners.common import StopRequest
    from tunedeck.core.runners.train import run_training

    seen: list[dict] = []
    original = transformers.Trainer.compute_loss

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if len(seen) < BATCHES_KEPT and "input_ids" in inputs and "labels" in inputs:
            value = loss[0] if isinstance(loss, tuple) else loss
            seen.append(
                {
                    "input_ids": inputs["input_ids"].tolist(),
                    "labels": inputs["labels"].tolist(),
                    "loss": float(value.detach()),
                }
            )
        return loss

    transformers.Trainer.compute_loss = recording_compute_loss
    results = {}
    for name, args in json.loads(Path(cases_path).read_text()).items():
        seen.clear()
        try:
            path = Path(args["output_dir"] + ".yaml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(dict(args)))
            config = load_config(path)
            code = run_training(config, StopRequest(Path(config.output_dir)))
            log = Path(config.output_dir) / "trainer_log.jsonl"
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            results[name] = {
                "losses": [line["loss"] for line in lines if "loss" in line],
                "batches": list(seen),
                "exit": code,
            }
        except Exception as exc:  # noqa: BLE001 - a failed case is reported, the others still run
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
