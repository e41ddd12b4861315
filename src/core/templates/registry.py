"""Chat templates as data: slot strings per role, under LLaMA-Factory's names and behaviour.

A slot is a tuple of pieces: plain strings (where `{{content}}` marks the data) and
`Special` markers for tokens that are added by id (bos, eos, or a named vocabulary token).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from tunedeck.core.errors import TemplateError


@dataclass(frozen=True)
class Special:
    """A token added by id rather than by text: the tokenizer's bos/eos, or a named token."""

    kind: str  # "bos" | "eos" | "token"
    token: str = ""


BOS = Special("bos")
EOS = Special("eos")

Slot = tuple  # tuple[str | Special, ...]

THINK_WORDS = ("<think>\n", "\n</think>\n\n")
TOOL_CALL_WORDS = ("<tool_call>", "</tool_call>")


@dataclass(frozen=True)
class Template:
    """Everything needed to turn a conversation into text and token ids the way training does."""

    name: str
    user: Slot
    assistant: Slot
    system: Slot
    function: Slot
    observation: Slot
    prefix: Slot = ()
    tool_format: str = "default"
    function_format: str = "default"
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    efficient_eos: bool = False
    replace_eos: bool = False
    reasoning: bool = False
    fuse_system: bool = False  # llama2 style: the system text goes inside the first user turn
    thought_words: tuple[str, str] = THINK_WORDS
    tool_call_words: tuple[str, str] = TOOL_CALL_WORDS
    from_tokenizer: bool = False  # "hf": slots are derived from the tokenizer's chat_template
    pretrain_eos: str = ""  # text that ends a pre-training document instead of the eos token
    notes: str = field(default="", compare=False)


class DuplicateTemplateError(TemplateError):
    """A template name registered twice (LLaMA-Factory refuses it too)."""


TEMPLATES: dict[str, Template] = {}


def get_template(name: str) -> Template:
    """The registered template called `name`; unknown names raise with the closest matches."""
    template = TEMPLATES.get(name)
    if template is not None:
        return template
    close = difflib.get_close_matches(name, list(TEMPLATES), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `tunedeck data preview --help`"
    raise TemplateError(f"unknown template '{name}'", hint=hint)


def define(
    name: str,
    *,
    user: Slot = ("{{content}}",),
    assistant: Slot | None = None,
    system: Slot | None = None,
    function: Slot | None = None,
    observation: Slot | None = None,
    efficient_eos: bool = False,
    **options,
) -> Template:
    """Register a template, filling unset slots with LLaMA-Factory's defaults; a name is
    registered once."""
    if name in TEMPLATES:
        raise DuplicateTemplateError(f"template '{name}' is already defined")
    closing = ("{{content}}",) if efficient_eos else ("{{content}}", EOS)
    template = Template(
        name=name,
        user=user,
        assistant=assistant if assistant is not None else closing,
        system=system if system is not None else ("{{content}}",),
        function=function if function is not None else (assistant or closing),
        observation=observation if observation is not None else user,
        efficient_eos=efficient_eos,
        **options,
    )
    TEMPLATES[name] = template
    return template


_IM_USER = ("<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n",)
_IM_ASSISTANT = ("{{content}}<|im_end|>\n",)
_IM_SYSTEM = ("<|im_start|>system\n{{content}}<|im_end|>\n",)
_QWEN_OBSERVATION = (
    "<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n",
)
_GEMMA = dict(
    user=("<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n",),
    assistant=("{{content}}<end_of_turn>\n",),
    system=("{{content}}\n\n",),
    observation=("<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n",),
    prefix=(BOS,),
    fuse_system=True,
)
_QWEN_FAMILY = dict(
    user=_IM_USER,
    assistant=_IM_ASSISTANT,
    system=_IM_SYSTEM,
    function=("{{content}}<|im_end|>\n",),
    observation=_QWEN_OBSERVATION,
    tool_format="qwen",
    function_format="qwen",
    stop_words=("<|im_end|>",),
    replace_eos=True,
)

define("empty", assistant=("{{content}}",))
define(
    "default",
    user=("Human: {{content}}", EOS, "\nAssistant:"),
    assistant=("{{content}}", EOS, "\n"),
    system=("System: {{content}}", EOS, "\n"),
)
define(
    "alpaca",
    user=("### Instruction:\n{{content}}\n\n### Response:\n",),
    assistant=("{{content}}", EOS, "\n\n"),
    default_system=(
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
    ),
)
define(
    "vicuna",
    user=("USER: {{content}} ASSISTANT:",),
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
)
define(
    "llama2",
    user=(BOS, "[INST] {{content}} [/INST]"),
    system=("<<SYS>>\n{{content}}\n<</SYS>>\n\n",),
    fuse_system=True,
)
define(
    "llama3",
    user=(
        "<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    assistant=("{{content}}<|eot_id|>",),
    system=("<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>",),
    function=("{{content}}<|eot_id|>",),
    observation=(
        "<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    prefix=(BOS,),
    tool_format="llama3",
    function_format="llama3",
    stop_words=("<|eot_id|>", "<|eom_id|>"),
    replace_eos=True,
    pretrain_eos="<|end_of_text|>",  # as LLaMA-Factory ends llama3 pre-training text
)
define(
    "llama4",
    user=(
        "<|header_start|>user<|header_end|>\n\n{{content}}<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n",
    ),
    assistant=("{{content}}<|eot|>",),
    system=("<|header_start|>system<|header_end|>\n\n{{content}}<|eot|>",),
    function=("{{content}}<|eot|>",),
    observation=(
        "<|header_start|>ipython<|header_end|>\n\n{{content}}<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n",
    ),
    prefix=(BOS,),
    tool_format="llama3",
    function_format="llama3",
    stop_words=("<|eot|>", "<|eom|>"),
    replace_eos=True,
)
define(
    "mistral",
    user=("[INST] {{content}}[/INST]",),
    assistant=(" {{content}}", EOS),
    system=("{{content}}\n\n",),
    function=("[TOOL_CALLS] {{content}}", EOS),
    observation=('[TOOL_RESULTS] {"content": {{content}}}[/TOOL_RESULTS]',),
    prefix=(BOS,),
    tool_format="mistral",
    function_format="mistral",
    fuse_system=True,
)
define(
    "qwen",
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    **_QWEN_FAMILY,
)
define("qwen3", reasoning=True, **_QWEN_FAMILY)
define("qwen3_nothink", **_QWEN_FAMILY)
define(
    "chatml",
    user=_IM_USER,
    assistant=_IM_ASSISTANT,
    system=_IM_SYSTEM,
    observation=("<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n",),
    stop_words=("<|im_end|>", "<|im_start|>"),
    replace_eos=True,
)
define("gemma", stop_words=("<end_of_turn>",), replace_eos=True, **_GEMMA)
define("gemma2", stop_words=("<eos>", "<end_of_turn>"), efficient_eos=True, **_GEMMA)
define("gemma3", stop_words=("<end_of_turn>",), replace_eos=True, **_GEMMA)
define(
    "phi",
    user=("<|user|>\n{{content}}<|end|>\n<|assistant|>\n",),
    assistant=("{{content}}<|end|>\n",),
    system=("<|system|>\n{{content}}<|end|>\n",),
    stop_words=("<|end|>",),
    replace_eos=True,
)
define(
    "phi4",
    user=("<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>",),
    assistant=("{{content}}<|im_end|>",),
    system=("<|im_start|>system<|im_sep|>{{content}}<|im_end|>",),
    stop_words=("<|im_end|>",),
    replace_eos=True,
)
define(
    "deepseek",
    user=("User: {{content}}\n\nAssistant:",),
    system=("{{content}}\n\n",),
    prefix=(BOS,),
)
define("deepseek3", user=("<｜User｜>{{content}}<｜Assistant｜>",), prefix=(BOS,))
define("deepseekr1", user=("<｜User｜>{{content}}<｜Assistant｜>",), prefix=(BOS,), reasoning=True)
define("yi", user=_IM_USER, assistant=_IM_ASSISTANT, system=_IM_SYSTEM, stop_words=("<|im_end|>",))
define(
    "glm4",
    user=("<|user|>\n{{content}}<|assistant|>",),
    assistant=("\n{{content}}",),
    system=("<|system|>\n{{content}}",),
    function=("{{content}}",),
    observation=("<|observation|>\n{{content}}<|assistant|>",),
    prefix=("[gMASK]<sop>",),
    tool_format="glm4",
    function_format="glm4",
    stop_words=("<|user|>", "<|observation|>"),
    efficient_eos=True,
)
define(
    "zephyr",
    user=("<|user|>\n{{content}}", EOS, "<|assistant|>\n"),
    system=("<|system|>\n{{content}}", EOS),
    default_system="You are Zephyr, a helpful assistant.",
)
define(
    "cohere",
    user=(
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    ),
    system=("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>",),
    prefix=(BOS,),
)
define("olmo", user=("<|user|>\n{{content}}<|assistant|>\n",), prefix=(EOS,))
define(
    "intern2",
    user=_IM_USER,
    assistant=_IM_ASSISTANT,
    system=_IM_SYSTEM,
    prefix=(BOS,),
    default_system=(
        "You are an AI assistant whose name is InternLM (书生·浦语).\n"
        "- InternLM (书生·浦语) is a conversational language model that is developed by "
        "Shanghai AI Laboratory (上海人工智能实验室). It is designed to be helpful, honest, "
        "and harmless.\n"
        "- InternLM (书生·浦语) can understand and communicate fluently in the language "
        "chosen by the user such as English and 中文."
    ),
    stop_words=("<|im_end|>",),
)
define(
    "baichuan2",
    user=("<reserved_106>{{content}}<reserved_107>",),
    efficient_eos=True,
    notes="not in LLaMA-Factory 0.9.5; as defined by earlier LLaMA-Factory releases",
)
define(
    "falcon",
    user=("User: {{content}}\nFalcon:",),
    assistant=("{{content}}\n",),
    efficient_eos=True,
)
define(
    "openchat",
    user=("GPT4 Correct User: {{content}}", EOS, "GPT4 Correct Assistant:"),
    prefix=(BOS,),
)
define(
    "solar",
    user=("### User:\n{{content}}\n\n### Assistant:\n",),
    system=("### System:\n{{content}}\n\n",),
    efficient_eos=True,
)
define(
    "starchat",
    user=("<|user|>\n{{content}}<|end|>\n<|assistant|>",),
    assistant=("{{content}}<|end|>\n",),
    system=("<|system|>\n{{content}}<|end|>\n",),
    stop_words=("<|end|>",),
)
define(
    "smollm2",
    user=_IM_USER,
    assistant=_IM_ASSISTANT,
    system=_IM_SYSTEM,
    stop_words=("<|im_end|>",),
    default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
)
define("hf", from_tokenizer=True, notes="slots derived from the tokenizer's chat_template")
