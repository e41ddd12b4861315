"""The training runner: `python -m tunedeck.core.runners.train CFG.yaml [key=value ...]`.

Reads a run config, tokenizes the dataset with tunedeck's converter and template (encode.py: the
same ids and labels `tunedeck data preview` shows), loads the model (bitsandbytes 4/8-bit for
QLoRA), adds LoRA, trains with transformers' Trainer (trl's DPOTrainer/KTOTrainer for dpo/kto, a
value head and the pairwise loss for rm: reward.py) and writes output_dir/trainer_log.jsonl and output_dir/run_status.json as it goes.

Exit codes: 0 done, 1 failed, 130 / 143 cancelled by SIGINT / SIGTERM (after saving a checkpoint).
"""

from __future__ import annotations

import random
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunedeck.core.config import RunConfig, last_checkpoint
from tunedeck.core.config.checks import CHECKPOINT_DIR, RUN_FILES
from tunedeck.core.errors import TunedeckError
from tunedeck.core.runners import progress
from tunedeck.core.runners.common import (
    StopRequest,
    config_from_argv,
    install_stop_handlers,
    is_main_process,
    leave_process_group,
    rank_line,
    run_under_torchrun,
    torchrun_nproc,
    world_size,
)
from tunedeck.core.runners.encode import EncodedData
from tunedeck.core.runners.prepared import prepare_dataset
from tunedeck.core.runners.unused_packages import hide_unused_packages

MODULE = "tunedeck.core.runners.train"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training job from a config file and overrides; return the process exit code."""
    config = config_from_argv(MODULE, argv)
    if isinstance(config, int):
        return config
    hide_unused_packages(config)  # before transformers is imported; this process is one run
    nproc = torchrun_nproc(config.nproc_per_node)
    if nproc:
        args = list(sys.argv[1:] if argv is None else argv)
        return run_under_torchrun(MODULE, args, nproc, config.output_dir)
    if world_size() > 1:
        print(rank_line(), file=sys.stderr, flush=True)
    stop = install_stop_handlers(config.output_dir)
    return run_training(config, stop)


def run_training(config: RunConfig, stop: StopRequest) -> int:
    """Do the whole run, turning failures into status 'failed' and cancellations into 130/143."""
    out = Path(config.output_dir or ".")
    status = progress.StatusWriter(out, enabled=is_main_process())
    try:
        status("loading", f"loading {config.model_name_or_path}")
        resume_from = _resume_path(config)
        if resume_from is None and config.overwrite_output_dir and is_main_process():
            _clear_previous_run(out)
        tokenizer = load_tokenizer(config)
        status("tokenizing", f"tokenizing {config.dataset}")
        data = prepare_dataset(config, tokenizer, status)
        model = load_model(config, tokenizer)
        if not data.train:
            raise TunedeckError(
                f"no usable rows in {config.dataset}", hint="check it with `tunedeck data validate`"
            )
        status("training", f"{len(data.train)} examples")
        trainer = _quiet(build_trainer(config, model, tokenizer, data, stop))
        stop.stoppable = True
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        stop.stoppable = False
        if stop.requested and not _trained_to_the_end(trainer.state):
            step = trainer.state.global_step
            status("cancelled", f"stopped at step {step}; checkpoint saved", current_steps=step)
            return stop.exit_code
        status("saving", f"saving to {out}")
        save_outputs(config, trainer, tokenizer, result.metrics, data)
        leave_process_group()
        status(
            "done",
            f"finished {trainer.state.global_step} steps",
            current_steps=trainer.state.global_step,
        )
        return progress.EXIT_OK
    except TunedeckError as exc:
        progress.print_problems(exc)
        status("failed", str(exc))
        return progress.EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - any crash becomes status failed with its message
        traceback.print_exc()
        status("failed", f"{type(exc).__name__}: {exc}")
        return progress.EXIT_FAILED


def _trained_to_the_end(state) -> bool:
    """Whether every step was taken: a stop asked for during the last one ends a finished run."""
    return bool(state.max_steps) and state.global_step >= state.max_steps


# --- model -------------------------------------------------------------------------------------


def load_tokenizer(config: RunConfig):
    """The tokenizer with the template's fix-ups (eos, stop words, pad)."""
    from tunedeck.core.templates import ensure_pad_token
    from tunedeck.core.templates import load_tokenizer as load_with_template

    tokenizer = load_with_template(config.model_name_or_path, config.template)
    ensure_pad_token(tokenizer)
    return tokenizer


def compute_dtype(config: RunConfig):
    import torch

    if config.bf16:
        return torch.bfloat16
    if config.fp16:
        return torch.float16
    return torch.float32


def load_model(config: RunConfig, tokenizer):
    """The base model (quantized through bitsandbytes when quantization_bit is set) plus adapters,
    and for stage rm a value head."""
    from transformers import AutoModelForCausalLM, set_seed

    set_seed(config.seed)  # as LLaMA-Factory: new embedding rows and LoRA weights from the seed
    model = AutoModelForCausalLM.from_pretrained(
        config.model_name_or_path, **model_arguments(config)
    )
    model.config.use_cache = False
    resized = _fit_embeddings(model, tokenizer)
    if config.quantization_bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = apply_finetuning(config, model, train_embeddings=resized)
    if config.stage == "rm":
        from tunedeck.core.runners.reward import with_value_head

        return with_value_head(model, config.adapter_name_or_path)
    return model


# flash_attn (LLaMA-Factory's names) -> transformers' attn_implementation; auto: the model's own
ATTENTION_IMPLEMENTATIONS = {
    "disabled": "eager",
    "sdpa": "sdpa",
    "fa2": "flash_attention_2",
    "fa3": "flash_attention_3",
}


def model_arguments(config: RunConfig) -> dict[str, Any]:
    """from_pretrained keyword arguments: dtype, bitsandbytes quantization, attn_implementation."""
    import torch

    dtype = compute_dtype(config)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.quantization_bit:
        from transformers import BitsAndBytesConfig

        if config.quantization_bit == 4:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=config.quantization_type,
                bnb_4bit_use_double_quant=config.double_quantization,
                bnb_4bit_compute_dtype=dtype,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if torch.cuda.is_available() and not _zero3(config):
            kwargs["device_map"] = {"": _local_device()}
    kwargs["dtype"] = (
        dtype if config.quantization_bit or config.finetuning_type != "full" else torch.float32
    )
    if config.flash_attn in ATTENTION_IMPLEMENTATIONS:
        kwargs["attn_implementation"] = ATTENTION_IMPLEMENTATIONS[config.flash_attn]
    return kwargs


def apply_finetuning(config: RunConfig, model, train_embeddings: bool = False):
    """LoRA adapters (new, or continued from adapter_name_or_path), full or freeze tuning.

    With `train_embeddings` (the vocabulary grew) and no additional_target, the input and output
    embeddings are trained beside LoRA, as LLaMA-Factory does.
    """
    if config.finetuning_type == "full":
        return model
    if config.finetuning_type == "freeze":
        return _freeze_all_but_last_layers(model, config.freeze_trainable_layers)
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    if config.adapter_name_or_path:
        adapters = [a.strip() for a in config.adapter_name_or_path.split(",")]
        for adapter in adapters[:-1]:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        return PeftModel.from_pretrained(model, adapters[-1], is_trainable=True)
    targets = config.lora_targets
    to_save = (
        [m.strip() for m in config.additional_target.split(",")]
        if config.additional_target
        else None
    )
    if to_save is None and train_embeddings:
        to_save = _embedding_module_names(model)
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_rank,
        lora_alpha=config.effective_lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if targets == ("all",) else list(targets),
        modules_to_save=to_save,
    )
    return get_peft_model(model, lora)


def _fit_embeddings(model, tokenizer) -> bool:
    """Grow the embeddings when the template added special tokens the model has never seen.

    The new rows are the old rows' mean plus noise, drawn as LLaMA-Factory draws them.
    """
    import torch

    size = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= size:
        return False
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    grown = model.get_input_embeddings().weight.shape[0]
    print(f"resizing token embeddings {size} -> {grown}", flush=True)
    with torch.no_grad():
        _noisy_mean_rows(model.get_input_embeddings().weight.data, grown - size)
        output = model.get_output_embeddings()
        if output is not None and not getattr(model.config, "tie_word_embeddings", False):
            _noisy_mean_rows(output.weight.data, grown - size)
    return True


def _noisy_mean_rows(weight, count: int) -> None:
    """The last `count` rows become the mean of the others plus N(0, 1/sqrt(dim)) noise."""
    import math

    mean = weight[:-count].mean(dim=0, keepdim=True)
    noise = weight.new_empty(weight[-count:].shape).normal_(0, 1.0 / math.sqrt(weight.size(1)))
    weight[-count:] = mean + noise


def _embedding_module_names(model) -> list[str]:
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    return sorted(
        {name.split(".")[-1] for name, m in model.named_modules() if any(m is w for w in wanted)}
    )


def _freeze_all_but_last_layers(model, count: int):
    layers = model.config.num_hidden_layers
    chosen = range(layers - count, layers) if count > 0 else range(-count)
    names = {f".{i}." for i in chosen}
    for name, parameter in model.named_parameters():
        parameter.requires_grad = any(n in name for n in names)
    return model


def _local_device() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


# --- trainer -----------------------------------------------------------------------------------


def training_arguments(config: RunConfig, has_eval: bool) -> dict[str, Any]:
    """transformers TrainingArguments keyword arguments from the config."""
    eval_strategy = config.eval_strategy if has_eval else "no"
    return {
        "output_dir": config.output_dir,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "per_device_eval_batch_size": config.per_device_eval_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_ratio if config.warmup_ratio else config.warmup_steps,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "optim": config.optim,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "save_only_model": config.save_only_model,
        "eval_strategy": eval_strategy,
        "eval_steps": config.eval_steps if eval_strategy == "steps" else None,
        "bf16": config.bf16,
        "fp16": config.fp16,
        "seed": config.seed,
        "dataloader_num_workers": config.dataloader_num_workers,
        "report_to": reporters(config),
        "deepspeed": deepspeed_config(config),
        "ddp_timeout": config.ddp_timeout,
        "use_liger_kernel": config.enable_liger_kernel,
        "liger_kernel_config": _liger_config(config),
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "include_num_input_tokens_seen": "non_padding",
        "ddp_find_unused_parameters": False,
        "use_cpu": config.use_cpu or (world_size() > 1 and not _cuda_available()),
    }


REPORTERS = ("tensorboard", "wandb", "mlflow", "trackio", "none", "all")


def reporters(config: RunConfig) -> list[str]:
    """report_to as the Trainer takes it: the integrations to log to ([] for none)."""
    names = [n.strip() for n in str(config.report_to).split(",") if n.strip()]
    unknown = [n for n in names if n not in REPORTERS]
    if unknown:
        raise TunedeckError(
            f"report_to: unknown integration {unknown[0]!r}", hint=", ".join(REPORTERS)
        )
    return [] if not names or names == ["none"] else names


def deepspeed_config(config: RunConfig) -> str | dict | None:
    """The DeepSpeed config for TrainingArguments: a JSON file path or its contents (a mapping)."""
    value = config.deepspeed
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import json

        return json.loads(value)
    return value or None


def _zero3(config: RunConfig) -> bool:
    return _zero_stage(config) == 3


def _zero_stage(config: RunConfig) -> int:
    value = deepspeed_config(config)
    if isinstance(value, str):
        import json

        try:
            value = json.loads(Path(value).read_text())
        except (OSError, ValueError):
            return 0
    stage = ((value or {}).get("zero_optimization") or {}).get("stage", 0)
    return int(stage) if str(stage).isdigit() else 0


def _liger_config(config: RunConfig) -> dict[str, bool] | None:
    """Preference and reward stages need the logits: no fused linear cross-entropy there."""
    if not config.enable_liger_kernel or config.stage in ("sft", "pt"):
        return None
    return {"fused_linear_cross_entropy": False}


# keys that need a package the training extra does not bring: (key is set, module, pip name)
OPTIONAL_PACKAGES = (
    ("deepspeed", "deepspeed", "deepspeed"),
    ("enable_liger_kernel", "liger_kernel", "liger-kernel"),
)


def require_packages(config: RunConfig) -> None:
    """Refuse, before loading anything, a key whose package is not installed here."""
    import importlib.util

    for key, module, package in OPTIONAL_PACKAGES:
        if getattr(config, key) and importlib.util.find_spec(module) is None:
            raise TunedeckError(
                f"{key} needs the '{module}' package, which is not installed here",
                hint=f"pip install {package}, or remove {key} from the config",
            )
    for name in reporters(config):
        wanted = {"tensorboard": ("tensorboard", "tensorboardX")}.get(name, (name,))
        if name != "all" and not any(importlib.util.find_spec(m) for m in wanted):
            raise TunedeckError(
                f"report_to {name} needs the '{wanted[0]}' package, which is not installed here",
                hint=f"pip install {wanted[0]}, or set report_to: none",
            )


def _arguments_before_model(config: RunConfig):
    """With ZeRO-3, TrainingArguments must exist while the model loads (its weights are then
    partitioned as they load); None otherwise."""
    if not _zero3(config):
        return None
    from transformers import TrainingArguments

    return TrainingArguments(**training_arguments(config, has_eval=False))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_trainer(config: RunConfig, model, tokenizer, data: EncodedData, stop: StopRequest):
    """A Trainer (sft, pt), trl's DPOTrainer / KTOTrainer, or the reward trainer (rm), with our
    progress and stop callbacks."""

    callbacks = [_progress_callback_class()(config, stop)]
    train_set = _as_dataset(data.train)
    eval_set = _as_dataset(data.eval) if data.eval else None
    arguments = training_arguments(config, eval_set is not None)
    if config.stage in ("sft", "pt"):
        from transformers import Trainer, TrainingArguments

        return Trainer(
            model=model,
            args=TrainingArguments(**arguments),
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=_collator(config, tokenizer),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    if config.stage == "dpo":
        from trl import DPOConfig, DPOTrainer

        class PretokenizedDPOTrainer(DPOTrainer):
            """Takes prompt/chosen/rejected ids rendered by our template instead of tokenizing text."""

            def _prepare_dataset(self, dataset, *_args, **_kwargs):
                return dataset

        return PretokenizedDPOTrainer(
            model=model,
            args=DPOConfig(
                **arguments,
                beta=config.pref_beta,
                loss_type=[config.pref_loss],
                max_length=config.cutoff_len,
            ),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    if config.stage == "kto":
        return _kto_trainer(config, model, tokenizer, data, arguments, callbacks)
    if config.stage == "rm":
        from transformers import TrainingArguments

        from tunedeck.core.runners.reward import reward_trainer

        return reward_trainer(
            model, TrainingArguments(**arguments), train_set, eval_set, tokenizer, callbacks
        )
    raise TunedeckError(f"stage {config.stage} is not supported by this runner")


def _collator(config: RunConfig, tokenizer):
    """Batches padded by batches.collate (what `tunedeck data preview --batch` shows), as tensors."""
    import torch

    from tunedeck.core.runners.batches import collate, pad_multiple

    multiple = pad_multiple(config)

    def collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(features, tokenizer.pad_token_id, multiple)
        tensors = {key: torch.tensor(rows, dtype=torch.long) for key, rows in batch.items()}
        if config.neat_packing and config.stage == "sft":
            tensors["attention_mask"] = _block_diagonal_mask(tensors["attention_mask"], config)
        return tensors

    return collator


def _block_diagonal_mask(numbered, config: RunConfig):
    """neat_packing: a 4D additive mask letting each token see the earlier tokens of its own
    packed example only (attention_mask numbers the examples, 0 for padding), as LLaMA-Factory."""
    import torch

    dtype = compute_dtype(config)
    length = numbered.size(1)
    same = numbered.unsqueeze(1).unsqueeze(2) == numbered.unsqueeze(1).unsqueeze(3)
    causal = torch.tril(torch.ones((length, length), dtype=torch.bool))
    keep = same & (numbered != 0).unsqueeze(1).unsqueeze(2) & causal
    zero = torch.tensor(0, dtype=dtype)
    return torch.where(keep, zero, torch.finfo(dtype).min)


def _kto_trainer(config: RunConfig, model, tokenizer, data: EncodedData, arguments, callbacks):
    """trl's KTOTrainer on examples our template already tokenized (prompt, completion, label).

    KTO reads batches in order (each example's KL term uses its batch neighbours' completions),
    so the examples are shuffled here, once, with the run's seed.
    """
    from trl import KTOConfig, KTOTrainer

    class PretokenizedKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, _processing_class, args, _name):
            if self.calculate_KL:
                dataset = dataset.map(
                    _with_mismatched_completions,
                    batched=True,
                    batch_size=args.per_device_train_batch_size,
                )
            return dataset

    order = list(range(len(data.train)))
    random.Random(config.seed).shuffle(order)  # the permutation shuffling the examples makes
    train = _as_dataset(data.train).select(order)
    return PretokenizedKTOTrainer(
        model=model,
        args=KTOConfig(
            **arguments,
            beta=config.pref_beta,
            desirable_weight=config.kto_chosen_weight,
            undesirable_weight=config.kto_rejected_weight,
            max_length=config.cutoff_len,
        ),
        train_dataset=train,
        eval_dataset=_as_dataset(data.eval) if data.eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def _as_dataset(examples):
    """A prepared (memory-mapped) Dataset as it is; a list of examples as a Dataset."""
    from datasets import Dataset

    return examples if isinstance(examples, Dataset) else Dataset.from_list(examples)


def _with_mismatched_completions(batch: dict[str, list]) -> dict[str, list]:
    """KL pairs: each prompt with the completion of the previous example in its batch (rotated)."""
    completions = batch["completion_ids"]
    return {**batch, "KL_completion_ids": completions[-1:] + completions[:-1]}


def _quiet(trainer):
    """Our callback prints one line per log; drop transformers' own printer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Writes trainer_log.jsonl lines and run_status.json; turns a stop request into a checkpoint."""

        def __init__(self, config: RunConfig, stop: StopRequest):
            self.config = config
            self.stop = stop
            self.log = progress.TrainerLog(Path(config.output_dir))
            self.clock = progress.Stopwatch()

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            resumed_at = state.global_step if state.global_step else None
            self.log.start(resume_at_step=resumed_at)
            previous = self.log.read()
            offset = progress.parse_duration(previous[-1]["elapsed_time"]) if previous else 0.0
            self.clock = progress.Stopwatch(offset=offset)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_log = True  # the last step always gets a log line
            if _any_rank(self.stop.requested, args.device):
                control.should_save = True
                control.should_log = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if not state.is_world_process_zero or ("loss" not in logs and "eval_loss" not in logs):
                return
            tokens = state.num_input_tokens_seen or None
            extra = {}
            if "rewards/accuracies" in logs:
                extra["reward_accuracy"] = logs["rewards/accuracies"]
            record = progress.log_line(
                state.global_step,
                state.max_steps,
                self.clock.elapsed,
                loss=logs.get("loss"),
                eval_loss=logs.get("eval_loss"),
                lr=logs.get("learning_rate"),
                epoch=logs.get("epoch", state.epoch),
                total_tokens=tokens,
                **extra,
            )
            self.log.append(record)
            progress.write_status(
                self.config.output_dir,
                "training",
                f"step {state.global_step}/{state.max_steps}",
                current_steps=state.global_step,
                total_steps=state.max_steps,
            )
            print(_describe(record), flush=True)

    return ProgressCallback


def _any_rank(flag: bool, device) -> bool:
    """True when `flag` is set on any rank, so that every rank stops after the same step."""
    if world_size() == 1:
        return flag
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _describe(record: dict[str, Any]) -> str:
    parts = [f"step {record['current_steps']}/{record['total_steps']}"]
    for key in ("loss", "eval_loss", "lr", "epoch", "throughput"):
        if key in record:
            parts.append(
                f"{key} {record[key]:.4g}"
                if isinstance(record[key], float)
                else f"{key} {record[key]}"
            )
    parts.append(f"elapsed {record['elapsed_time']} remaining {record['remaining_time']}")
    return "  ".join(parts)


# --- outputs -----------------------------------------------------------------------------------


def save_outputs(
    config: RunConfig, trainer, tokenizer, metrics: dict[str, Any], data: EncodedData
) -> None:
    """Adapter (or model), tokenizer, trainer_state.json, train/eval/all_results.json."""
    trainer.save_model()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(config.output_dir)
    metrics = {**metrics, "train_tokens_per_epoch": data.tokens}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if data.eval:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)


def _resume_path(config: RunConfig) -> Path | None:
    resume = config.resume_from_checkpoint
    if resume is True:
        return last_checkpoint(config.output_dir)
    if isinstance(resume, str):
        return Path(resume)
    return None


def _clear_previous_run(out: Path) -> None:
    """overwrite_output_dir: remove the previous run's checkpoints and results (nothing else)."""
    if not out.is_dir():
        return
    for entry in out.iterdir():
        if entry.is_dir() and CHECKPOINT_DIR.match(entry.name):
            shutil.rmtree(entry)
        elif entry.name in RUN_FILES or entry.name in (
            "train_results.json",
            "eval_results.json",
            "trainer_state.json",
        ):
            entry.unlink()


if __name__ == "__main__":
    sys.exit(main())
