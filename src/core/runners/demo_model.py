"""A tiny Llama-architecture model and byte-level BPE tokenizer, built offline in seconds.

Used by the example workspace, the tests and the benches: no hub, no download.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]
# LLaMA-Factory's `default` template (the example configs' template) as a chat_template, so
# the template check finds the demo model's own template and the configs' one alike.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ 'Human: ' + message['content'] + eos_token + '\nAssistant:' }}"
    "{% else %}{{ message['content'] + eos_token + '\n' }}{% endif %}"
    "{% endfor %}"
)

_CORPUS_SEED = [
    "The quick brown fox jumps over the lazy dog.",
    "Fine-tuning adapts a pretrained language model to a new task with a small learning rate.",
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Write a short poem about the sea, the wind and the stars at night.",
    "LoRA adds low-rank matrices to the attention projections and trains only those.",
    "QLoRA keeps the base weights in 4-bit NF4 and trains LoRA adapters in higher precision.",
    "def add(a, b):\n    return a + b\n",
    '{"name": "get_weather", "arguments": {"city": "Berlin"}}',
    "You are a helpful assistant. Answer briefly and truthfully.",
    "The loss went down from 2.31 to 0.42 after 300 steps of training.",
    "机器学习是人工智能的一个分支。",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000; symbols: <>[]{}()!?.,;:'\"-_=+*/\\|@#$%^&~`",
]


def build_tokenizer(out_dir: str | Path, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on a fixed corpus and save it as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS_SEED * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def build_model(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Build and save a ~100k-parameter LlamaForCausalLM plus its tokenizer into out_dir."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(str(out))
    return out
