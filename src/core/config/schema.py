"""The run config: every key tunedeck reads, with LLaMA-Factory's names and defaults.

RunConfig is what runners receive. KEY_RULES adds what a type cannot say: allowed values and
ranges. IGNORED_KEYS are LLaMA-Factory keys we accept (so existing files keep working) but that
have no effect here; a check reports them as warnings, never as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

STAGES = ("sft", "pt", "dpo", "kto", "rm")
ATTENTION = ("auto", "disabled", "sdpa", "fa2", "fa3")  # flash_attn, as LLaMA-Factory names them
FINETUNING_TYPES = ("lora", "full", "freeze")
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)


@dataclass(frozen=True)
class RunConfig:
    """A validated run config (training and export keys), LLaMA-Factory key names."""

    engine: str = "builtin"  # builtin | llamafactory | auto (tunedeck.core.engines)
    # model
    model_name_or_path: str = ""
    adapter_name_or_path: str | None = None
    trust_remote_code: bool = False
    flash_attn: str = "auto"  # the model's attn_implementation (ATTENTION)
    enable_liger_kernel: bool = False
    # method
    stage: str = "sft"
    do_train: bool = True
    finetuning_type: str = "lora"
    quantization_bit: int | None = None
    quantization_method: str = "bnb"
    quantization_type: str = "nf4"
    double_quantization: bool = True
    lora_rank: int = 8
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_target: str = "all"
    additional_target: str | None = None
    freeze_trainable_layers: int = 2
    freeze_trainable_modules: str = "all"
    pref_beta: float = 0.1
    pref_loss: str = "sigmoid"
    kto_chosen_weight: float = 1.0
    kto_rejected_weight: float = 1.0
    # dataset
    dataset: str | None = None
    eval_dataset: str | None = None
    dataset_dir: str = "data"
    template: str | None = None
    cutoff_len: int = 2048
    max_samples: int | None = None
    val_size: float = 0.0
    train_on_prompt: bool = False
    mask_history: bool = False
    packing: bool | None = None
    neat_packing: bool = False  # packing with attention kept within each packed example
    enable_thinking: bool | None = True  # reasoning templates: train the thought or not
    mix_strategy: str = "concat"
    interleave_probs: str | None = None  # comma list of floats, one per dataset
    preprocessing_num_workers: int | None = None  # processes tokenizing; None: just one
    tokenized_path: str | None = None  # prepared data saved there, or loaded when it exists
    overwrite_cache: bool = False  # prepare the data again even when a cached copy matches
    # output
    output_dir: str | None = None
    overwrite_output_dir: bool = False
    logging_steps: float = 10
    save_steps: float = 500
    save_total_limit: int | None = None
    save_only_model: bool = False
    # train
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    eval_strategy: str = "no"
    eval_steps: float | None = None
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    seed: int = 42
    dataloader_num_workers: int = 0
    resume_from_checkpoint: bool | str | None = None
    nproc_per_node: int | None = None
    report_to: str = "none"  # comma list: tensorboard, wandb, mlflow, trackio, none
    deepspeed: str | dict | None = None  # a DeepSpeed JSON file or its contents (ZeRO-2/3)
    ddp_timeout: int = 180000000  # seconds, LLaMA-Factory's default
    use_cpu: bool = False  # also implied for a multi-process run on a machine without CUDA
    # export (merge + GPTQ quantization)
    export_dir: str | None = None
    export_size: int = 5
    export_device: str = "cpu"
    export_legacy_format: bool = False
    export_quantization_bit: int | None = None
    export_quantization_dataset: str | None = None
    export_quantization_nsamples: int = 128
    export_quantization_maxlen: int = 1024
    # a Slurm host's resources (tunedeck's own keys; a flag of the same name wins)
    slurm_nodes: int | None = None
    slurm_gpus_per_node: int | None = None
    slurm_time: str | None = None  # Slurm's forms: "30", "2:00:00", "1-00:00:00"
    slurm_mem: str | None = None  # per node, e.g. "64G"
    slurm_cpus_per_task: int | None = None
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_requeue: bool | None = None

    @property
    def datasets(self) -> tuple[str, ...]:
        """The `dataset` comma list as names."""
        return _split_names(self.dataset)

    @property
    def eval_datasets(self) -> tuple[str, ...]:
        return _split_names(self.eval_dataset)

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """`lora_target` as module names; ("all",) means every linear layer."""
        return _split_names(self.lora_target) or ("all",)

    @property
    def effective_lora_alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else self.lora_rank * 2

    @property
    def effective_packing(self) -> bool:
        """LLaMA-Factory's default: pack pre-training data, not the rest; neat_packing packs."""
        if self.neat_packing:
            return True
        return self.packing if self.packing is not None else self.stage == "pt"

    def to_dict(self) -> dict[str, Any]:
        """All keys and values, in declaration order (a resolved, re-loadable config)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The inverse of to_dict; keys it does not know are an error (TypeError)."""
        return cls(**data)

    def changed(self) -> dict[str, Any]:
        """Only the keys whose value differs from the default."""
        defaults = RunConfig()
        return {k: v for k, v in self.to_dict().items() if getattr(defaults, k) != v}


@dataclass(frozen=True)
class KeyRule:
    """What a key's value may be, beyond its type."""

    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False


KEY_RULES: dict[str, KeyRule] = {
    "engine": KeyRule(choices=("builtin", "llamafactory", "auto")),
    "stage": KeyRule(choices=STAGES),
    "flash_attn": KeyRule(choices=ATTENTION),
    "ddp_timeout": KeyRule(minimum=1),
    "finetuning_type": KeyRule(choices=FINETUNING_TYPES),
    "quantization_bit": KeyRule(choices=(4, 8)),
    "quantization_method": KeyRule(choices=("bnb",)),
    "quantization_type": KeyRule(choices=("nf4", "fp4")),
    "lora_rank": KeyRule(minimum=1),
    "lora_alpha": KeyRule(minimum=1),
    "lora_dropout": KeyRule(minimum=0, maximum=1, exclusive_maximum=True),
    "freeze_trainable_layers": KeyRule(),
    "pref_beta": KeyRule(minimum=0, exclusive_minimum=True),
    "pref_loss": KeyRule(choices=("sigmoid", "hinge", "ipo")),
    "kto_chosen_weight": KeyRule(minimum=0),
    "kto_rejected_weight": KeyRule(minimum=0),
    "cutoff_len": KeyRule(minimum=1),
    "mix_strategy": KeyRule(choices=("concat", "interleave_under", "interleave_over")),
    "max_samples": KeyRule(minimum=1),
    "val_size": KeyRule(minimum=0),
    "logging_steps": KeyRule(minimum=0, exclusive_minimum=True),
    "save_steps": KeyRule(minimum=0, exclusive_minimum=True),
    "save_total_limit": KeyRule(minimum=1),
    "per_device_train_batch_size": KeyRule(minimum=1),
    "per_device_eval_batch_size": KeyRule(minimum=1),
    "gradient_accumulation_steps": KeyRule(minimum=1),
    "learning_rate": KeyRule(minimum=0, exclusive_minimum=True),
    "num_train_epochs": KeyRule(minimum=0, exclusive_minimum=True),
    "max_steps": KeyRule(minimum=-1),
    "lr_scheduler_type": KeyRule(choices=LR_SCHEDULERS),
    "warmup_ratio": KeyRule(minimum=0, maximum=1),
    "warmup_steps": KeyRule(minimum=0),
    "weight_decay": KeyRule(minimum=0),
    "max_grad_norm": KeyRule(minimum=0),
    "eval_strategy": KeyRule(choices=("no", "steps", "epoch")),
    "eval_steps": KeyRule(minimum=0, exclusive_minimum=True),
    "seed": KeyRule(minimum=0),
    "dataloader_num_workers": KeyRule(minimum=0),
    "nproc_per_node": KeyRule(minimum=1),
    "export_size": KeyRule(minimum=1),
    "export_device": KeyRule(choices=("cpu", "auto")),
    "export_quantization_bit": KeyRule(choices=(2, 3, 4, 8)),
    "export_quantization_nsamples": KeyRule(minimum=1),
    "export_quantization_maxlen": KeyRule(minimum=1),
    "slurm_nodes": KeyRule(minimum=1),
    "slurm_gpus_per_node": KeyRule(minimum=1),
    "slurm_cpus_per_task": KeyRule(minimum=1),
    "preprocessing_num_workers": KeyRule(minimum=1),
}

IGNORED_KEYS: dict[str, str] = {
    "plot_loss": "the loss plot is drawn by the tunedeck app from trainer_log.jsonl",
    "use_unsloth": "not supported",
    "do_eval": "evaluation runs when val_size or eval_dataset is set",
    "do_predict": "not supported",
    "export_hub_model_id": "tunedeck never uploads",
    "upcast_layernorm": "not supported",
    "disable_gradient_checkpointing": "use gradient_checkpointing",
    "image_max_pixels": "multimodal inputs are not used",
    "video_max_pixels": "multimodal inputs are not used",
    "logging_dir": "progress goes to output_dir/trainer_log.jsonl",
    "resize_vocab": "the embeddings grow by themselves when the template adds tokens",
}

KNOWN_KEYS: tuple[str, ...] = tuple(f.name for f in fields(RunConfig))
SLURM_KEYS: tuple[str, ...] = tuple(key for key in KNOWN_KEYS if key.startswith("slurm_"))


def _split_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in str(value).split(",") if part.strip())
