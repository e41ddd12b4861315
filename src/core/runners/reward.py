"""Reward-model training (`stage: rm`), as LLaMA-Factory's rm stage does it.

The model is the causal LM (with its adapters) plus a value head: dropout 0.1 and a Linear from the
last hidden state to one score per token, created right after the adapters with torch's default
Linear initialisation, the same draws trl's AutoModelForCausalLMWithValueHead makes. A batch is its
rows' chosen answers followed by their rejected ones; a row's score is the value at its last real
token, and the loss is -logsigmoid(chosen - rejected), averaged. The head is saved beside the
adapter as value_head.safetensors (LLaMA-Factory's file and key names).

Imported only inside a training process (torch, transformers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

VALUE_HEAD_FILE = "value_head.safetensors"
HEAD_DROPOUT = 0.1  # trl's ValueHead default (the model configs have no summary_dropout_prob)
PAD_MULTIPLE = 8  # LLaMA-Factory's pairwise collator pads to a multiple of 8


class ValueHead(nn.Module):
    """One score per token from the last hidden state, computed in float32."""

    def __init__(self, hidden_size: int, dropout: float = HEAD_DROPOUT):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.summary = nn.Linear(hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        output = self.dropout(hidden_states)
        return self.summary(output.to(self.summary.weight.dtype)).squeeze(-1)


class RewardModel(nn.Module):
    """A causal LM (plain or with adapters) and its value head; forward gives token values."""

    main_input_name = "input_ids"

    def __init__(self, pretrained_model: nn.Module):
        super().__init__()
        self.pretrained_model = pretrained_model
        self.config = pretrained_model.config
        self.v_head = ValueHead(_hidden_size(pretrained_model.config))
        self.v_head.to(_device_of(pretrained_model))

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> torch.Tensor:
        kwargs.pop("labels", None)
        output = self.pretrained_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            return_dict=True,
            use_cache=False,
            **kwargs,
        )
        hidden = output.hidden_states[-1].to(self.v_head.summary.weight.device)
        return self.v_head(hidden)

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        self.pretrained_model.gradient_checkpointing_enable(**kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.pretrained_model.get_input_embeddings()

    def save_head(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"v_head.{k}": v.detach().contiguous().cpu() for k, v in self._head().items()}
        save_file(tensors, os.path.join(folder, VALUE_HEAD_FILE))

    def load_head(self, folder: str | Path) -> bool:
        """Load value_head.safetensors from `folder` when it has one; True when loaded."""
        path = Path(folder) / VALUE_HEAD_FILE
        if not path.is_file():
            return False
        from safetensors.torch import load_file

        state = {k.removeprefix("v_head."): v for k, v in load_file(str(path)).items()}
        self.v_head.load_state_dict(state)
        return True

    def _head(self) -> dict[str, torch.Tensor]:
        return self.v_head.state_dict()


def with_value_head(model: nn.Module, adapter_dir: str | None = None) -> RewardModel:
    """The model with a new value head (or the one saved with the adapter being continued)."""
    reward = RewardModel(model)
    if adapter_dir:
        reward.load_head(adapter_dir.split(",")[-1].strip())
    return reward


def pairwise_loss(values: torch.Tensor, attention_mask: torch.Tensor):
    """The loss and the chosen / rejected scores of a batch laid out chosen rows first."""
    rows = values.size(0) // 2
    last = attention_mask.sum(dim=-1, keepdim=True) - 1
    scores = values.gather(dim=-1, index=last).squeeze(-1)
    chosen, rejected = scores[:rows], scores[rows:]
    loss = -nn.functional.logsigmoid(chosen.float() - rejected.float()).mean()
    return loss, chosen, rejected


def pairwise_features(examples: list[dict[str, Any]]) -> list[dict[str, list[int]]]:
    """Each row's prompt + chosen, then each row's prompt + rejected (ids and attention)."""
    features = []
    for answer in ("chosen_ids", "rejected_ids"):
        for example in examples:
            ids = list(example["prompt_ids"]) + list(example[answer])
            features.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return features


def reward_trainer(model, arguments, train_set, eval_set, tokenizer, callbacks):
    """A transformers Trainer computing the pairwise loss, saving the adapter and the head."""
    from transformers import Trainer

    from tunedeck.core.runners.batches import collate

    def collator(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = collate(pairwise_features(examples), tokenizer.pad_token_id, PAD_MULTIPLE)
        return {
            key: torch.tensor(batch[key], dtype=torch.long)
            for key in ("input_ids", "attention_mask")
        }

    class RewardTrainer(Trainer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.model_accepts_loss_kwargs = False
            self.can_return_loss = True  # eval_loss without labels

        def compute_loss(self, model, inputs, return_outputs=False, **_kwargs):
            values = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            loss, chosen, rejected = pairwise_loss(values, inputs["attention_mask"])
            return (loss, (loss, chosen, rejected)) if return_outputs else loss

        def _save(self, output_dir: str | None = None, state_dict=None):
            folder = output_dir or self.args.output_dir
            os.makedirs(folder, exist_ok=True)
            reward = self.accelerator.unwrap_model(self.model)
            reward.pretrained_model.save_pretrained(folder)
            reward.save_head(folder)
            torch.save(self.args, os.path.join(folder, "training_args.bin"))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            reward = self.accelerator.unwrap_model(model or self.model)
            _load_weights(reward.pretrained_model, resume_from_checkpoint)
            reward.load_head(resume_from_checkpoint)

    return RewardTrainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def _load_weights(model: nn.Module, folder: str) -> None:
    """A checkpoint's adapter (peft) or full weights back into `model`."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    if isinstance(model, PeftModel):
        state = load_file(os.path.join(folder, "adapter_model.safetensors"))
        set_peft_model_state_dict(model, state)
        return
    from transformers.modeling_utils import load_sharded_checkpoint

    if os.path.exists(os.path.join(folder, "model.safetensors")):
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=False)
    else:
        load_sharded_checkpoint(model, folder, strict=False)


def _hidden_size(config) -> int:
    text = getattr(config, "text_config", None) or config
    return getattr(text, "word_embed_proj_dim", None) or text.hidden_size


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
