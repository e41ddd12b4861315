"""The built-in engine trains on what LLaMA-Factory trains on: the same YAMLs trained for 2 steps
by LLaMA-Factory (the reference venv, through its Python API) and by tunedeck's runner, one process
each running every case; the first batches must be identical and the losses equal.

With LoRA's B at zero, step 1's loss is the base model's loss on the first batch; step 2 follows
one AdamW step (same lr, no warmup, LoRA weights and new embedding rows drawn from the same seed).

Differences by design, asserted as such:
- FIRST_LABEL_COUNTED: the reference's transformers (5.6) divides a batch's summed loss by every
  label that is not ignored, the first of each row included, though no token predicts it; newer
  transformers (ours) divide by the predicted labels only. Where the first label is trained
  (train_on_prompt, pre-training), the reference's loss is ours times predicted/all labels.
- kto step 2 with a template that adds tokens (the embeddings trained beside LoRA): LLaMA-Factory's
  own KTO trainer (on trl 0.24) and trl 1.x's KTOTrainer, which the runner uses, update them
  differently; step 1 (policy = reference) is equal, and so is step 2 without new tokens.
- rm: no difference. The value head (dropout 0.1, a Linear on the last hidden state) is created
  right after LoRA with the same draws as trl's AutoModelForCausalLMWithValueHead, and the pairwise
  loss (-logsigmoid(chosen - rejected) at each row's last token) does not count labels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOLERANCE = 1e-3
RUN_TIMEOUT = 600

COMMON = {
    "stage": "sft",
    "finetuning_type": "lora",
    "lora_target": "all",
    "cutoff_len": 128,
    "overwrite_output_dir": True,
    "per_device_train_batch_size": 2,
    "max_steps": 2,
    "logging_steps": 1,
    "learning_rate": 5.0e-5,
    "bf16": False,
    "seed": 42,
    "report_to": "none",
}
CASES: dict[str, dict] = {
    "sft alpaca default": {"dataset": "alpaca_en_demo", "template": "default"},
    "sft identity qwen": {"dataset": "identity", "template": "qwen"},
    "sft tools llama3": {"dataset": "glaive_toolcall_en_demo", "template": "llama3"},
    "sft sharegpt mistral": {"dataset": "glaive_toolcall_en_demo", "template": "mistral"},
    "sft train_on_prompt qwen": {
        "dataset": "identity",
        "template": "qwen",
        "train_on_prompt": True,
    },
    "sft mask_history qwen": {
        "dataset": "glaive_toolcall_en_demo",
        "template": "qwen",
        "mask_history": True,
    },
    "sft efficient_eos breeze": {"dataset": "glaive_toolcall_en_demo", "template": "breeze"},
    "sft val_size max_samples": {
        "dataset": "alpaca_en_demo",
        "template": "llama3",
        "val_size": 0.1,
        "max_samples": 50,
    },
    "sft packing": {"dataset": "alpaca_en_demo", "template": "qwen", "packing": True},
    "sft neat_packing": {"dataset": "alpaca_en_demo", "template": "default", "neat_packing": True},
    "sft two datasets concat": {
        "dataset": "identity,alpaca_en_demo",
        "template": "default",
        "max_samples": 20,
    },
    "sft two datasets interleave_probs": {
        "dataset": "identity,alpaca_en_demo",
        "template": "default",
        "mix_strategy": "interleave_over",
        "interleave_probs": "0.2,0.8",
        "max_samples": 30,
    },
    "pt packing": {"stage": "pt", "dataset": "c4_demo", "template": "default"},
    "dpo": {"stage": "dpo", "dataset": "dpo_en_demo", "template": "llama3"},
    "kto": {"stage": "kto", "dataset": "kto_en_demo", "template": "default"},
    "kto new tokens": {"stage": "kto", "dataset": "kto_en_demo", "template": "llama3"},
    "rm": {"stage": "rm", "dataset": "dpo_en_demo", "template": "default"},
    "rm new tokens": {"stage": "rm", "dataset": "dpo_en_demo", "template": "llama3"},
}
FIRST_LABEL_COUNTED = {"sft train_on_prompt qwen", "pt packing"}
STEP_2_DIFFERS = {"kto new tokens"}
LM_STAGES = ("sft", "pt")
TEMPLATES_ADDING_TOKENS = {"qwen", "llama3"}  # LLaMA-Factory needs resize_vocab for these


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, shared_data, reference_python):
    """Both engines' losses and first batches for every case, the two processes side by side."""
    root = tmp_path_factory.mktemp("reference-loss")
    jobs = {}
    for engine, python, script in (
        ("reference", reference_python, "reference_train.py"),
        ("tunedeck", Path(sys.executable), "engine_train.py"),
    ):
        cases = {
            name: _arguments(engine, keys, tiny_model, shared_data, root / engine / f"case{i}")
            for i, (name, keys) in enumerate(CASES.items())
        }
        (root / f"{engine}.json").write_text(json.dumps(cases))
        command = [str(python), str(HERE / script), str(root / f"{engine}.json")]
        command.append(str(root / f"{engine}-out.json"))
        log = (root / f"{engine}.log").open("w")
        jobs[engine] = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    for engine, job in jobs.items():
        assert job.wait(timeout=RUN_TIMEOUT) == 0, (root / f"{engine}.log").read_text()[-3000:]
    return {e: json.loads((root / f"{e}-out.json").read_text()) for e in jobs}


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)  # the first one waits for both engines' runs
@pytest.mark.parametrize("case", list(CASES))
def test_step_losses_equal_llamafactory(trained, case):
    reference, ours = trained["reference"][case], trained["tunedeck"][case]
    assert "error" not in reference, reference
    assert "error" not in ours, ours
    assert len(reference["losses"]) == len(ours["losses"]) == 2
    steps = 1 if case in STEP_2_DIFFERS else 2
    for step in range(steps):
        expected = ours["losses"][step] * _reference_scale(case, ours, step)
        assert reference["losses"][step] == pytest.approx(expected, abs=TOLERANCE), (case, step)
    if case in STEP_2_DIFFERS:
        assert abs(reference["losses"][1] - ours["losses"][1]) > TOLERANCE / 10


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)  # the first one waits for both engines' runs
@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].get("stage", "sft") in LM_STAGES])
def test_first_batches_are_llamafactorys(trained, case):
    """sft and pt: the same rows in the same order, padded alike (ids and labels); dpo, kto and rm
    batches are built inside trainers with their own loss and are not recorded."""
    reference, ours = trained["reference"][case], trained["tunedeck"][case]
    assert len(reference["batches"]) == len(ours["batches"]) == 2
    for theirs, mine in zip(reference["batches"], ours["batches"], strict=True):
        assert mine["input_ids"] == theirs["input_ids"]
        assert mine["labels"] == theirs["labels"]


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_first_label_counting_is_the_only_sft_pt_difference(trained):
    """The scale is 1 exactly where the first label of every row is masked."""
    for case, keys in CASES.items():
        if keys.get("stage", "sft") in LM_STAGES:
            scale = _reference_scale(case, trained["tunedeck"][case], 0)
            assert (scale != 1.0) == (case in FIRST_LABEL_COUNTED), case


def _arguments(engine: str, keys: dict, model: Path, data: Path, out: Path) -> dict:
    arguments = {**COMMON, **keys, "output_dir": str(out)}
    arguments.update(model_name_or_path=str(model), dataset_dir=str(data))
    if engine == "reference":
        arguments.update(do_train=True, overwrite_cache=True)
        if arguments["template"] in TEMPLATES_ADDING_TOKENS:
            arguments["resize_vocab"] = True
    return arguments


def _reference_scale(case: str, ours: dict, step: int) -> float:
    """predicted / all trained labels of our batch at `step` (1.0 for dpo, kto and rm)."""
    if not ours.get("batches"):
        return 1.0
    labels = ours["batches"][step]["labels"]
    every = sum(1 for row in labels for label in row if label != -100)
    predicted = sum(1 for row in labels for label in row[1:] if label != -100)
    return predicted / every


def test_a_grown_vocabulary_is_seeded_and_trained_as_llamafactory_does(tmp_path, tiny_model):
    """Two loads with one seed give the same LoRA and new embedding rows; the embeddings train."""
    from tunedeck.core.config import RunConfig
    from tunedeck.core.runners.train import load_model, load_tokenizer

    config = RunConfig(model_name_or_path=str(tiny_model), template="qwen", seed=7)
    tokenizer = load_tokenizer(config)
    first, second = (load_model(config, tokenizer).state_dict() for _ in range(2))
    assert first.keys() == second.keys()
    assert all(first[k].equal(second[k]) for k in first)
    model = load_model(config, tokenizer)
    embeddings = model.get_input_embeddings()
    assert embeddings.weight.shape[0] == 576 > len(tokenizer)  # padded to a multiple of 64
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("embed_tokens" in n for n in trainable) and any("lm_head" in n for n in trainable)
