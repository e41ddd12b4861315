"""Will this run fit? Peak GPU memory per device from a run config and the model's config.json.

Nothing here loads weights or imports torch: the model is its config.json, read as JSON. The
model follows what tunedeck's built-in runner does (transformers + peft + bitsandbytes, sdpa
attention) and DeepSpeed ZeRO when the config names a DeepSpeed file.

Bytes per device, from these parts:

- weights: every parameter at its dtype. bitsandbytes quantizes the linear layers of the
  decoder (never lm_head): 4-bit is 0.5 byte/param plus one fp32 absmax per 64 weights
  (double quant: one 8-bit absmax per 64 and one fp32 constant per 256 of those); 8-bit is
  1 byte/param plus one fp32 scale per output row. With quantization, peft's
  prepare_model_for_kbit_training upcasts what stays unquantized (embeddings, lm_head,
  norms) to fp32. Full fine-tuning loads fp32 weights (the master copy; under ZeRO they are
  in the compute dtype and the fp32 master copy is an optimizer state); LoRA adapters are
  fp32 (peft's autocast_adapter_dtype). transformers 5 stores MoE experts as fused tensors,
  which neither bitsandbytes nor all-linear LoRA touches.
- gradients: one per trainable parameter, at the trainable parameter's dtype (plus DDP's
  bucket copy of the same size when several processes train without ZeRO).
- optimizer: adamw keeps 2 states per trainable parameter at its dtype (8-bit / paged 8-bit
  variants: 2 bytes; paged states may move to CPU under pressure, counted here on the GPU).
  Under ZeRO the states are fp32 (8 bytes) plus the fp32 master copy (4 bytes) when training in
  bf16/fp16: the classic 2 + 2 + 12 bytes per parameter of the ZeRO paper.
- compute_copies: full fine-tuning in bf16/fp16 autocasts each fp32 linear weight to a
  2-byte copy kept for backward (one layer's worth with gradient checkpointing).
- activations, per decoder layer and token, in bytes, with A = activation dtype bytes:
  A*(2h + 3q + 2kv + 4i) + 8h (q, kv: the query and key/value widths), i.e. the two norms'
  fp32 inputs (4h each) and A-byte outputs, sdpa's q, k, v and output, o_proj's input, and the
  SwiGLU MLP's gate, silu(gate), up and product (i each); a MoE layer has instead, per token,
  k routed experts (4*moe_i plus their gathered input and output, 2h) and the router's fp32
  logits and probabilities. This is Korthikanti et al.'s s*b*h*(34 + 5*a*s/h) rewritten for a Llama block:
  no dropout masks, gated MLP, GQA, and no s*s attention scores (sdpa's kernels keep only a
  log-sum-exp). With gradient checkpointing each layer keeps only its input (A*h) and one
  layer is recomputed at a time: L*A*h + one layer.
- logits: s*b*vocab*(A + 4 + 4): the lm_head output, its fp32 upcast for the loss and the
  fp32 log-softmax kept for backward; for a 128k-152k vocabulary this dominates a LoRA run.
- cuda_context: 0.5 GiB for the CUDA context, cuBLAS workspace and allocator slack
  (what nvidia-smi shows for a process that has only initialised CUDA on a recent GPU).

Peak = weights + optimizer + cuda_context + the larger of the forward phase (activations +
logits + compute_copies) and the backward/step phase (gradients): Trainer frees the gradients
(zero_grad(set_to_none)) before each forward, and backward frees activations as it goes.

DeepSpeed ZeRO over N processes divides optimizer states (stage >= 1), gradients (>= 2) and
weights (3) by N.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tunedeck.core.errors import ConfigError, Location, UsageError

GIB = 1024**3
CUDA_CONTEXT_BYTES = GIB // 2
FP32_BYTES = 4
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
EIGHT_BIT_OPTIMIZERS = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "adam8bit")
STATELESS_OPTIMIZERS = ("sgd",)
TIGHT_SHARE = 0.9
# bitsandbytes block sizes
NF4_BLOCK = 64
DOUBLE_QUANT_BLOCK = 256
PART_NAMES = (
    "weights",
    "gradients",
    "optimizer",
    "compute_copies",
    "activations",
    "logits",
    "cuda_context",
)


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on, from config.json."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_size: int = 0
    dense_layers: tuple[int, ...] = ()
    model_type: str = ""

    @classmethod
    def from_config_json(cls, doc: dict[str, Any], source: str = "config.json") -> ModelShape:
        """Read a Hugging Face config.json document (a text_config inside wins)."""
        doc = doc.get("text_config") or doc
        return _shape_from(doc, source)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def is_moe_layer(self, index: int) -> bool:
        return self.is_moe and index not in self.dense_layers

    def attention_linears(self) -> tuple[tuple[str, int, int], ...]:
        """(name, in, out) of one layer's attention projections, GQA k/v included."""
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        h = self.hidden_size
        return (("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h))

    def mlp_linears(self, width: int) -> tuple[tuple[str, int, int], ...]:
        """(name, in, out) of a gated MLP of this width."""
        h = self.hidden_size
        return (("gate_proj", h, width), ("up_proj", h, width), ("down_proj", width, h))

    def layer_linears(self, index: int) -> tuple[tuple[str, int, int], ...]:
        """The nn.Linear layers of decoder layer `index` (fused MoE experts are not among them)."""
        linears = self.attention_linears()
        if not self.is_moe_layer(index):
            return linears + self.mlp_linears(self.intermediate_size)
        if self.shared_expert_size:
            linears += self.mlp_linears(self.shared_expert_size)
            linears += (("shared_expert_gate", self.hidden_size, 1),)
        return linears

    def expert_params(self, index: int) -> int:
        """Parameters of the fused routed experts and the router of layer `index`."""
        if not self.is_moe_layer(index):
            return 0
        one = 3 * self.hidden_size * self.moe_intermediate_size
        return self.num_experts * one + self.num_experts * self.hidden_size

    def layer_other_params(self) -> int:
        """Norms and biases of one layer: what is neither a linear weight nor an expert."""
        norms = 2 * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return norms + ((q + 2 * kv) if self.attention_bias else 0)

    def embedding_params(self) -> int:
        """Input embeddings, lm_head (unless tied) and the final norm."""
        heads = 1 if self.tie_word_embeddings else 2
        return heads * self.vocab_size * self.hidden_size + self.hidden_size

    def linear_params(self, index: int) -> int:
        return sum(i * o for _, i, o in self.layer_linears(index))

    def parameter_count(self) -> int:
        """Every parameter of the model."""
        per_layer = sum(self._layer_params(i) for i in range(self.num_layers))
        return per_layer + self.embedding_params()

    def active_parameter_count(self) -> int:
        """Parameters one token passes through (k of the routed experts)."""
        total = self.parameter_count()
        if not self.is_moe:
            return total
        one = 3 * self.hidden_size * self.moe_intermediate_size
        idle = (self.num_experts - self.experts_per_token) * one
        return total - idle * sum(self.is_moe_layer(i) for i in range(self.num_layers))

    def _layer_params(self, index: int) -> int:
        return self.linear_params(index) + self.expert_params(index) + self.layer_other_params()


@dataclass(frozen=True)
class TrainingPlan:
    """What a run config decides about memory, in the units the estimate needs."""

    finetuning_type: str = "lora"
    quantization_bit: int | None = None
    double_quantization: bool = True
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("all",)
    freeze_trainable_layers: int = 2
    compute_dtype: str = "bfloat16"
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    cutoff_len: int = 2048
    batch_size: int = 1
    zero_stage: int = 0
    world_size: int = 1

    @classmethod
    def from_run_config(cls, config, *, zero_stage: int = 0) -> TrainingPlan:
        """The plan of a `RunConfig` (LLaMA-Factory key names)."""
        dtype = "bfloat16" if config.bf16 else "float16" if config.fp16 else "float32"
        return cls(
            finetuning_type=config.finetuning_type,
            quantization_bit=config.quantization_bit,
            double_quantization=config.double_quantization,
            lora_rank=config.lora_rank,
            lora_targets=config.lora_targets,
            freeze_trainable_layers=config.freeze_trainable_layers,
            compute_dtype=dtype,
            optim=config.optim,
            gradient_checkpointing=config.gradient_checkpointing,
            cutoff_len=config.cutoff_len,
            batch_size=config.per_device_train_batch_size,
            zero_stage=zero_stage,
            world_size=config.nproc_per_node or 1,
        )

    @property
    def mixed_precision(self) -> bool:
        return self.compute_dtype != "float32"

    @property
    def compute_bytes(self) -> int:
        return DTYPE_BYTES[self.compute_dtype]

    def changed(self, **changes: Any) -> TrainingPlan:
        return replace(self, **changes)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes per device and what makes them up."""

    parts: dict[str, int]
    peak_bytes: int
    total_params: int
    trainable_params: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Suggestion:
    """A change to the config (key=value words) and the estimate it gives."""

    change: str
    estimate: MemoryEstimate
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "peak_bytes": self.estimate.peak_bytes, "fits": self.fits}


@dataclass(frozen=True)
class GpuVerdict:
    """Whether the estimate fits one GPU: 'fits', 'tight' (over 90%) or 'does not fit'."""

    name: str
    total_bytes: int
    used_bytes: int | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitReport:
    """The estimate for a config, its verdict on each GPU and the changes that would fit."""

    model: str
    plan: TrainingPlan
    estimate: MemoryEstimate
    gpus: tuple[GpuVerdict, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    gpu_source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fits(self) -> bool | None:
        """True when it fits every GPU, None when there is no GPU to judge against."""
        if not self.gpus:
            return None
        return all(g.verdict != "does not fit" for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "plan": asdict(self.plan),
            "peak_bytes": self.estimate.peak_bytes,
            "parts": self.estimate.parts,
            "total_params": self.estimate.total_params,
            "trainable_params": self.estimate.trainable_params,
            "fits": self.fits,
            "gpu_source": self.gpu_source,
            "gpus": [g.to_dict() for g in self.gpus],
            "suggestions": [s.to_dict() for s in self.suggestions],
            "notes": list(self.notes),
        }


def estimate_memory(shape: ModelShape, plan: TrainingPlan) -> MemoryEstimate:
    """Peak bytes per device for training `shape` as `plan` says (see the module docstring)."""
    _check_plan(plan)
    trainable, trainable_bytes = trainable_parameters(shape, plan)
    weights = weight_bytes(shape, plan) + trainable * trainable_bytes
    gradients = trainable * trainable_bytes
    if plan.world_size > 1 and plan.zero_stage == 0:
        gradients *= 2  # DDP's reducer buckets hold a second copy
    optimizer = trainable * optimizer_bytes_per_param(plan, trainable_bytes)
    parts = {
        "weights": _sharded(weights, plan, 3),
        "gradients": _sharded(gradients, plan, 2),
        "optimizer": _sharded(optimizer, plan, 1),
        "compute_copies": compute_copy_bytes(shape, plan),
        "activations": activation_bytes(shape, plan),
        "logits": logit_bytes(shape, plan),
        "cuda_context": CUDA_CONTEXT_BYTES,
    }
    forward = parts["activations"] + parts["logits"] + parts["compute_copies"]
    static = parts["weights"] + parts["optimizer"] + parts["cuda_context"]
    peak = static + max(forward, parts["gradients"])
    return MemoryEstimate(parts, peak, shape.parameter_count(), trainable)


def trainable_parameters(shape: ModelShape, plan: TrainingPlan) -> tuple[int, int]:
    """How many parameters train and the bytes each is held in (under ZeRO: the compute dtype)."""
    if plan.finetuning_type == "lora":
        count, held = lora_parameters(shape, plan.lora_rank, plan.lora_targets), FP32_BYTES
    elif plan.finetuning_type == "freeze":
        layers = _freeze_layers(shape, plan.freeze_trainable_layers)
        count, held = sum(shape._layer_params(i) for i in layers), plan.compute_bytes
    else:
        count, held = shape.parameter_count(), FP32_BYTES
    return count, plan.compute_bytes if plan.zero_stage else held


def lora_parameters(shape: ModelShape, rank: int, targets: tuple[str, ...]) -> int:
    """LoRA A and B matrices, r*(in + out) per targeted linear layer; "all": every linear one."""
    wanted = None if targets == ("all",) else set(targets)
    total = 0
    for index in range(shape.num_layers):
        for name, fan_in, fan_out in shape.layer_linears(index):
            if wanted is None or name in wanted:
                total += rank * (fan_in + fan_out)
    return total


def weight_bytes(shape: ModelShape, plan: TrainingPlan) -> int:
    """Bytes of the frozen weights (the trainable ones are counted with their own dtype)."""
    if plan.finetuning_type == "full":
        return 0
    trainable_layers = (
        _freeze_layers(shape, plan.freeze_trainable_layers)
        if plan.finetuning_type == "freeze"
        else ()
    )
    frozen = shape.parameter_count() - sum(shape._layer_params(i) for i in trainable_layers)
    if not plan.quantization_bit:
        return frozen * plan.compute_bytes
    linear = sum(shape.linear_params(i) for i in range(shape.num_layers))
    return quantized_linear_bytes(shape, plan) + (frozen - linear) * FP32_BYTES


def quantized_linear_bytes(shape: ModelShape, plan: TrainingPlan) -> int:
    """bitsandbytes storage of the decoder's linear layers, quantization constants included."""
    layers = range(shape.num_layers)
    params = sum(shape.linear_params(i) for i in layers)
    if plan.quantization_bit == 8:
        rows = sum(o for i in layers for _, _, o in shape.layer_linears(i))
        return params + rows * FP32_BYTES
    blocks = math.ceil(params / NF4_BLOCK)
    if plan.double_quantization:
        constants = blocks + math.ceil(blocks / DOUBLE_QUANT_BLOCK) * FP32_BYTES
    else:
        constants = blocks * FP32_BYTES
    return math.ceil(params / 2) + constants


def optimizer_bytes_per_param(plan: TrainingPlan, trainable_bytes: int) -> int:
    """Optimizer state bytes per trainable parameter; ZeRO keeps fp32 states and master copy."""
    optim = plan.optim.lower()
    state_bytes = FP32_BYTES if plan.zero_stage else trainable_bytes
    if optim in STATELESS_OPTIMIZERS:
        states = 0
    elif optim in EIGHT_BIT_OPTIMIZERS or "8bit" in optim:
        states = 2
    else:
        states = 2 * state_bytes
    master = FP32_BYTES if plan.zero_stage and plan.mixed_precision else 0
    return states + master


def compute_copy_bytes(shape: ModelShape, plan: TrainingPlan) -> int:
    """Autocast's 2-byte copies of fp32 linear weights kept for backward (full, no ZeRO)."""
    if plan.finetuning_type != "full" or plan.zero_stage or not plan.mixed_precision:
        return 0
    if plan.gradient_checkpointing:
        return max(shape.linear_params(i) for i in range(shape.num_layers)) * plan.compute_bytes
    return sum(shape.linear_params(i) for i in range(shape.num_layers)) * plan.compute_bytes


def activation_bytes(shape: ModelShape, plan: TrainingPlan) -> int:
    """Bytes the decoder layers keep for backward (logits apart), per the module docstring."""
    tokens = plan.cutoff_len * plan.batch_size
    per_layer = [layer_activation_bytes_per_token(shape, plan, i) for i in range(shape.num_layers)]
    final_norm = FP32_BYTES * shape.hidden_size + plan.compute_bytes * shape.hidden_size
    if plan.gradient_checkpointing:
        kept = shape.num_layers * plan.compute_bytes * shape.hidden_size + max(per_layer)
        return tokens * (kept + final_norm)
    return tokens * (sum(per_layer) + final_norm)


def layer_activation_bytes_per_token(shape: ModelShape, plan: TrainingPlan, index: int) -> int:
    """A*(2h + 3q + 2kv + 4i) + 8h bytes per token for a dense layer; MoE: k routed experts."""
    a, h = plan.compute_bytes, shape.hidden_size
    q, kv = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    attention = a * (3 * q + 2 * kv)
    norms = 2 * FP32_BYTES * h + 2 * a * h
    if not shape.is_moe_layer(index):
        return attention + norms + a * 4 * shape.intermediate_size
    k = shape.experts_per_token
    routed = k * a * (4 * shape.moe_intermediate_size + 2 * h)
    shared = a * 4 * shape.shared_expert_size
    router = FP32_BYTES * 2 * shape.num_experts
    return attention + norms + a * h + routed + shared + router


def logit_bytes(shape: ModelShape, plan: TrainingPlan) -> int:
    """s*b*vocab*(A + 4 + 4): lm_head output, its fp32 upcast and the fp32 log-softmax."""
    return plan.cutoff_len * plan.batch_size * shape.vocab_size * (plan.compute_bytes + 8)


def judge(
    estimate: MemoryEstimate, gpus: list[tuple[str, int, int | None]]
) -> tuple[GpuVerdict, ...]:
    """A verdict for each (name, total bytes, used bytes or None) GPU."""
    return tuple(
        GpuVerdict(name, total, used, _verdict(estimate.peak_bytes, total))
        for name, total, used in gpus
    )


def suggest(shape: ModelShape, plan: TrainingPlan, capacity: int) -> tuple[Suggestion, ...]:
    """Single changes that lower the peak, each with its new estimate, those that fit first."""
    found = []
    current = estimate_memory(shape, plan).peak_bytes
    for change, changed in _candidate_changes(shape, plan, capacity):
        estimate = estimate_memory(shape, changed)
        if estimate.peak_bytes >= current:
            continue
        found.append(Suggestion(change, estimate, estimate.peak_bytes <= capacity))
    found.sort(key=lambda s: (not s.fits, s.estimate.peak_bytes))
    return tuple(found)


def fit_config(
    config_path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    model_config: str | Path | None = None,
    gpus: list[tuple[str, int, int | None]] | None = None,
    gpu_source: str = "",
) -> FitReport:
    """The whole check for a run config file: estimate, verdicts and suggestions."""
    from tunedeck.core.config.loader import load_config

    config = load_config(config_path, overrides, check_files=False)
    shape_path = model_config_path(config.model_name_or_path, model_config, config_path)
    zero_stage, notes = deepspeed_stage(config_path, overrides)
    return fit_run_config(
        config,
        load_model_shape(shape_path),
        zero_stage=zero_stage,
        gpus=gpus,
        gpu_source=gpu_source,
        model=str(shape_path),
        notes=notes,
    )


def fit_run_config(
    config,
    shape: ModelShape,
    *,
    zero_stage: int = 0,
    gpus: list[tuple[str, int, int | None]] | None = None,
    gpu_source: str = "",
    model: str = "",
    notes: tuple[str, ...] = (),
) -> FitReport:
    """The check for a `RunConfig` already in hand (a screen's form) and its model's shape."""
    if shape.is_moe and config.quantization_bit:
        notes += (
            "MoE experts are fused tensors: bitsandbytes leaves them unquantized and"
            " prepare_model_for_kbit_training holds them in fp32",
        )
    plan = TrainingPlan.from_run_config(config, zero_stage=zero_stage)
    if config.nproc_per_node is None and gpus and gpu_source != "--gpu-mem":
        plan = plan.changed(world_size=len(gpus))  # the runner starts one process per GPU
    estimate = estimate_memory(shape, plan)
    verdicts = judge(estimate, gpus or [])
    suggestions: tuple[Suggestion, ...] = ()
    if any(v.verdict == "does not fit" for v in verdicts):
        suggestions = suggest(shape, plan, min(v.total_bytes for v in verdicts))
    return FitReport(model, plan, estimate, verdicts, suggestions, gpu_source, notes)


def gpus_to_judge(
    host: str | None = None, gpu_mem: str | None = None
) -> tuple[list[tuple[str, int, int | None]], str]:
    """(name, total bytes, used bytes) of the GPUs to judge against, and where they came from:
    --gpu-mem, the host's GPUs (as `hosts check` reports them) or this machine's."""
    if gpu_mem:
        return [(f"--gpu-mem {gpu_mem}", parse_bytes(gpu_mem), None)], "--gpu-mem"
    if host:
        from tunedeck.core.jobs.ssh import SshBackend

        backend = SshBackend.for_host(host)
        try:
            found = backend.gpus()
        finally:
            backend.close()
        source = f"host {host}"
    else:
        from tunedeck.core.jobs.gpus import query_gpus

        found, source = query_gpus(), "this machine"
    return gpus_of(found), source


def gpus_of(found) -> list[tuple[str, int, int | None]]:
    """(name, total bytes, used bytes) of `Gpu`s as a host probe reports them."""
    mib = 1024**2
    return [
        (
            f"GPU {g.index}: {g.name}",
            g.memory_total_mib * mib,
            g.memory_used_mib * mib if g.memory_used_mib is not None else None,
        )
        for g in found
        if g.memory_total_mib
    ]


def model_config_path(
    model: str, given: str | Path | None, config_path: str | Path | None = None
) -> Path:
    """The config.json to read: --model-config, or model_name_or_path when it is a local folder."""
    if given is not None:
        path = Path(given).expanduser()
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(
                "model config not found",
                location=Location(file=str(path)),
                hint="--model-config takes the model's config.json or its folder",
            )
        return path
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return folder / "config.json"
    raise ConfigError(
        f"'{model}' is not a local folder with a config.json, so its sizes are unknown",
        location=Location(
            file=str(config_path) if config_path else None, column="model_name_or_path"
        ),
        hint="give the model's config.json with --model-config PATH (no weights are needed)",
    )


def load_model_shape(path: str | Path) -> ModelShape:
    """Read config.json as JSON (never through transformers) into a ModelShape."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("model config not found", location=Location(file=str(path))) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"model config cannot be read: {exc}", location=Location(file=str(path))
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError("model config is not a JSON object", location=Location(file=str(path)))
    return ModelShape.from_config_json(doc, str(path))


def deepspeed_stage(config_path: str | Path, overrides=()) -> tuple[int, tuple[str, ...]]:
    """ZeRO stage from the `deepspeed` file the run config names (0 when none)."""
    name = _raw_deepspeed_value(config_path, overrides)
    if not name:
        return 0, ()
    path = Path(str(name)).expanduser()
    if not path.is_absolute():
        path = Path(config_path).parent / path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("DeepSpeed config not found", location=Location(file=str(path))) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"DeepSpeed config cannot be read: {exc}", location=Location(file=str(path))
        ) from None
    stage = (doc.get("zero_optimization") or {}).get("stage", 0) if isinstance(doc, dict) else 0
    if stage not in (0, 1, 2, 3):
        raise ConfigError(
            f"zero_optimization.stage must be 0 to 3, got {stage!r}",
            location=Location(file=str(path), column="zero_optimization.stage"),
        )
    note = f"ZeRO stage {stage} from {path} (tunedeck's own runner trains with plain DDP)"
    return int(stage), (note,)


def parse_bytes(text: str) -> int:
    """'80GiB', '80G', '81920MiB' or a plain number of bytes as bytes."""
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}
    cleaned = text.strip().lower().replace("ib", "").replace("b", "") if text else ""
    number = cleaned.rstrip("kmgt")
    unit = cleaned[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"not a memory size: '{text}'", hint="e.g. --gpu-mem 80GiB") from None
    if value <= 0 or unit not in units:
        raise UsageError(f"not a memory size: '{text}'", hint="e.g. --gpu-mem 80GiB")
    return int(value * units[unit])


# --- helpers -----------------------------------------------------------------------------------


def _shape_from(doc: dict[str, Any], source: str) -> ModelShape:
    def need(*keys: str) -> int:
        for key in keys:
            if isinstance(doc.get(key), int) and not isinstance(doc.get(key), bool):
                return doc[key]
        raise ConfigError(
            f"config.json has no integer '{keys[0]}'",
            location=Location(file=source, column=keys[0]),
            hint="fit knows decoder-only transformers (Llama, Qwen, Mistral, Mixtral, ...)",
        )

    hidden, heads = need("hidden_size", "n_embd", "d_model"), need("num_attention_heads", "n_head")
    layers = need("num_hidden_layers", "n_layer")
    experts = int(
        doc.get("num_experts") or doc.get("num_local_experts") or doc.get("n_routed_experts") or 0
    )
    moe_width = int(doc.get("moe_intermediate_size") or 0) or (
        need("intermediate_size") if experts else 0
    )
    shared = int(doc.get("shared_expert_intermediate_size") or 0)
    if doc.get("n_shared_experts"):
        shared = int(doc["n_shared_experts"]) * moe_width
    return ModelShape(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(doc.get("num_key_value_heads") or heads),
        head_dim=int(doc.get("head_dim") or hidden // heads),
        intermediate_size=int(doc.get("intermediate_size") or 4 * hidden),
        vocab_size=need("vocab_size"),
        tie_word_embeddings=bool(doc.get("tie_word_embeddings", False)),
        attention_bias=bool(
            doc.get("attention_bias", doc.get("model_type") in ("qwen2", "qwen2_moe"))
        ),
        qk_norm=doc.get("model_type", "") in ("qwen3", "qwen3_moe"),
        num_experts=experts,
        experts_per_token=int(doc.get("num_experts_per_tok") or 0),
        moe_intermediate_size=moe_width,
        shared_expert_size=shared,
        dense_layers=_dense_layers(doc, layers) if experts else (),
        model_type=str(doc.get("model_type", "")),
    )


def _dense_layers(doc: dict[str, Any], layers: int) -> tuple[int, ...]:
    """Layers of a MoE model with a plain MLP (mlp_only_layers, decoder_sparse_step, first_k)."""
    dense = set(doc.get("mlp_only_layers") or ())
    step = int(doc.get("decoder_sparse_step") or 1)
    dense |= {i for i in range(layers) if (i + 1) % step != 0}
    dense |= set(range(int(doc.get("first_k_dense_replace") or 0)))
    return tuple(sorted(dense))


def _check_plan(plan: TrainingPlan) -> None:
    if plan.finetuning_type not in ("lora", "freeze", "full"):
        raise ConfigError(
            f"unknown finetuning_type '{plan.finetuning_type}'",
            location=Location(column="finetuning_type"),
        )
    if plan.quantization_bit and plan.finetuning_type != "lora":
        raise ConfigError(
            "quantization_bit trains only with finetuning_type: lora",
            location=Location(column="quantization_bit"),
        )
    if plan.zero_stage == 3 and plan.quantization_bit:
        raise ConfigError(
            "bitsandbytes quantization cannot be sharded by ZeRO-3 here",
            location=Location(column="quantization_bit"),
        )


def _freeze_layers(shape: ModelShape, count: int) -> range:
    """The trainable layers of freeze tuning: the last `count` (negative: the first -count)."""
    n = shape.num_layers
    return range(max(n - count, 0), n) if count > 0 else range(min(-count, n))


def _sharded(value: int, plan: TrainingPlan, from_stage: int) -> int:
    if plan.zero_stage >= from_stage and plan.world_size > 1:
        return math.ceil(value / plan.world_size)
    return value


def _verdict(peak: int, total: int) -> str:
    if peak > total:
        return "does not fit"
    return "tight" if peak > TIGHT_SHARE * total else "fits"


def _candidate_changes(shape: ModelShape, plan: TrainingPlan, capacity: int):
    """(change words, changed plan) for each single change worth trying."""
    if not plan.gradient_checkpointing:
        yield "gradient_checkpointing=true", plan.changed(gradient_checkpointing=True)
    if plan.batch_size > 1:
        size = _largest_fitting(shape, plan, capacity, "batch_size", plan.batch_size)
        yield f"per_device_train_batch_size={size}", plan.changed(batch_size=size)
    if plan.cutoff_len > 256:
        size = _largest_fitting(shape, plan, capacity, "cutoff_len", plan.cutoff_len, floor=256)
        yield f"cutoff_len={size}", plan.changed(cutoff_len=size)
    if plan.quantization_bit != 4 and plan.zero_stage != 3:
        changes = {"quantization_bit": 4}
        words = "quantization_bit=4"
        if plan.finetuning_type != "lora":
            changes["finetuning_type"] = "lora"
            words = "finetuning_type=lora quantization_bit=4"
        yield words, plan.changed(**changes)
    if plan.world_size > 1 and plan.zero_stage != 3 and not plan.quantization_bit:
        yield "deepspeed with zero_optimization.stage 3", plan.changed(zero_stage=3)
    if not plan.gradient_checkpointing:
        checkpointed = plan.changed(gradient_checkpointing=True)
        for words, changed in _candidate_changes(shape, checkpointed, capacity):
            yield f"gradient_checkpointing=true {words}", changed


def _largest_fitting(shape, plan, capacity, key: str, start: int, floor: int = 1) -> int:
    """Halve `key` from `start` until the estimate fits or it reaches `floor`."""
    value = start
    while value > floor:
        value = max(value // 2, floor)
        if estimate_memory(shape, plan.changed(**{key: value})).peak_bytes <= capacity:
            break
    return value


def _raw_deepspeed_value(config_path: str | Path, overrides) -> str | None:
    """The `deepspeed` key of the run config (an ignored key, so RunConfig does not carry it)."""
    for item in reversed(list(overrides)):
        key, sep, value = str(item).partition("=")
        if sep and key.strip() == "deepspeed":
            return value.strip() or None
    import yaml

    try:
        doc = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # load_config has already reported an unreadable file
    value = doc.get("deepspeed") if isinstance(doc, dict) else None
    return str(value) if value else None
