"""Train every case of a JSON file with LLaMA-Factory's own Python API, in one process.

Run with the reference venv's python (never imported by tunedeck):
`python reference_train.py CASES.json OUT.json`. CASES maps a case name to LLaMA-Factory
arguments; OUT gets, per case, the logged losses and the first batches the Trainer computed a
loss on (input_ids and labels per row, sft and pt only), or the error that stopped it.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

BATCHES_KEPT = 2


def main(cases_path: str, out_path: str) -> None:
    import transformers
    from llamafactory.train.tuner import run_exp

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
            run_exp(args=dict(args))
            state = json.loads((Path(args["output_dir"]) / "trainer_state.json").read_text())
            results[name] = {
                "losses": [line["loss"] for line in state["log_history"] if "loss" in line],
                "batches": list(seen),
            }
        except Exception as exc:  # noqa: BLE001 - a failed case is reported, the others still run
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
