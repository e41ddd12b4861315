"""Chat templates as data: slot strings per role, under LLaMA-Factory's names and behaviour.

A slot is a tuple of pieces: plain strings (where `{{content}}` marks the data) and
`Special` markers for tokens that are added by id (bos, eos, or a named vocabulary token).

Every name LLaMA-Factory 0.9.5 registers is here (121), plus `hf` and `baichuan2`; the
goldens in tests/templates check each against its preprocessing token for token.
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
class Media:
    """The media a multimodal template accepts: the plugin that expands `<image>`, `<video>`
    and `<audio>` placeholders at training time, and the model token each expands into."""

    plugin: str
    image: str = ""
    video: str = ""
    audio: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The placeholder kinds it takes: image, video, audio."""
        return tuple(k for k in ("image", "video", "audio") if getattr(self, k))

    def note(self) -> str:
        """What happens to a row's media placeholders with this template."""
        tokens = ", ".join(f"<{k}> -> {getattr(self, k)}" for k in self.kinds)
        return (
            f"multimodal ({self.plugin}): media placeholders ({tokens}) are expanded at training "
            "time by the model's processor; text-only rows render exactly as shown"
        )


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
    empty_thought_close_only: bool = False  # glm4_7: an empty thought is the closing word alone
    media: Media | None = None
    notes: str = field(default="", compare=False)

    @property
    def empty_thought(self) -> str:
        """The thought block added to a response that has none."""
        if self.empty_thought_close_only:
            return self.thought_words[1]
        return self.thought_words[0] + self.thought_words[1]


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
    if "media" in options and "notes" not in options:
        options["notes"] = options["media"].note()
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
    media=Media("llama4", image="<|image|>"),
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
define(
    "gemma3",
    stop_words=("<end_of_turn>",),
    replace_eos=True,
    media=Media("gemma3", image="<image_soft_token>"),
    **_GEMMA,
)
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


# -- the rest of LLaMA-Factory 0.9.5's templates, by family ---------------------------------


def like(family: dict, **changes) -> dict:
    """A family's options with some replaced or added."""
    return {**family, **changes}


_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
_IM_TOOL = ("<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n",)
_CHATML_SLOTS = dict(user=_IM_USER, assistant=_IM_ASSISTANT, system=_IM_SYSTEM)
_IM_STOP = dict(stop_words=("<|im_end|>",))
_VICUNA = dict(user=("USER: {{content}} ASSISTANT:",), default_system=_VICUNA_SYSTEM)
_LLAMA3 = dict(
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
)
_MISTRAL_V3 = dict(
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
_TEKKEN = dict(  # mistral's tekken tokenizers: no space after [INST] or [TOOL_CALLS]
    user=("[INST]{{content}}[/INST]",),
    system=("{{content}}\n\n",),
    function=("[TOOL_CALLS]{{content}}", EOS),
    observation=('[TOOL_RESULTS]{"content": {{content}}}[/TOOL_RESULTS]',),
    prefix=(BOS,),
    tool_format="mistral",
    function_format="mistral",
    fuse_system=True,
)
_GLM = dict(
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
_GLM_MOE = like(_GLM, tool_format="glm4_moe", function_format="glm4_moe")
_GLM_VISION = dict(
    stop_words=("<|user|>", "<|observation|>", "</answer>"),
    media=Media("glm4v", image="<|image|>", video="<|video|>"),
)
_GEMMA4 = dict(
    user=("<|turn>user\n{{content}}<turn|>\n<|turn>model\n",),
    assistant=("{{content}}<turn|>\n",),
    system=("<|turn>system\n<|think|>{{content}}<turn|>\n",),
    function=("<|tool>{{content}}<tool|>",),
    observation=("<|turn>tool\n{{content}}<turn|>\n<|turn>model\n",),
    prefix=(BOS,),
    tool_format="gemma4",
    function_format="gemma4",
    default_system="You are a helpful assistant.",
    stop_words=("<turn|>",),
    replace_eos=True,
    reasoning=True,
    thought_words=("<|channel>thought\n", "<channel|>"),
)
_GRANITE = dict(
    user=(
        "<|start_of_role|>user<|end_of_role|>{{content}}<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>",
    ),
    assistant=("{{content}}<|end_of_text|>\n",),
    system=("<|start_of_role|>system<|end_of_role|>{{content}}<|end_of_text|>\n",),
)
_MOONSHOT = dict(
    user=(
        "<|im_user|>user<|im_middle|>{{content}}<|im_end|><|im_assistant|>assistant<|im_middle|>",
    ),
    assistant=("{{content}}<|im_end|>",),
    system=("<|im_system|>system<|im_middle|>{{content}}<|im_end|>",),
    stop_words=("<|im_end|>",),
)
_LFM2 = dict(
    **_CHATML_SLOTS,
    observation=(
        "<|im_start|>tool\n<|tool_response_start|>{{content}}<|tool_response_end|><|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    tool_format="lfm2",
    function_format="lfm2",
    stop_words=("<|im_end|>",),
    replace_eos=True,
    tool_call_words=("<|tool_call_start|>", "<|tool_call_end|>"),
)
_SEED = dict(
    user=(BOS, "user\n{{content}}", EOS, BOS, "assistant\n"),
    system=(BOS, "system\n{{content}}", EOS),
)
_QWEN_VL = Media("qwen2_vl", image="<|image_pad|>", video="<|video_pad|>")
_QWEN3_VL = Media("qwen3_vl", image="<|image_pad|>", video="<|video_pad|>")
_QWEN_OMNI = Media(
    "qwen2_omni", image="<|image_pad|>", video="<|video_pad|>", audio="<|audio_pad|>"
)
_QWEN3_5 = like(_QWEN_FAMILY, tool_format="qwen3_5", function_format="qwen3_5", media=_QWEN3_VL)
_LLAVA_NEXT = Media("llava_next", image="<image>")
_LLAVA_NEXT_VIDEO = Media("llava_next_video", image="<image>", video="<video>")
_INTERN_VL = Media("intern_vl", image="<image>", video="<video>")
_MINICPM_V = Media("minicpm_v", image="<image>", video="<video>")
_PIXTRAL = Media("pixtral", image="[IMG]")
_PALIGEMMA = Media("paligemma", image="<image>")
_HELPFUL = "You are a helpful assistant."

define(
    "bailing",
    user=("<role>HUMAN</role>{{content}}<role>ASSISTANT</role>",),
    system=("<role>SYSTEM</role>{{content}}",),
    observation=("<role>OBSERVATION</role>{{content}}<role>ASSISTANT</role>",),
    stop_words=("<|endoftext|>",),
    efficient_eos=True,
)
define(
    "bailing_v2",
    user=("<role>HUMAN</role>{{content}}<|role_end|><role>ASSISTANT</role>",),
    assistant=("{{content}}<|role_end|>",),
    system=("<role>SYSTEM</role>{{content}}<|role_end|>",),
    observation=(
        "<role>OBSERVATION</role>\n<tool_response>\n{{content}}\n</tool_response><|role_end|>"
        "<role>ASSISTANT</role>",
    ),
    tool_format="ling",
    function_format="ling",
    stop_words=("<|endoftext|>",),
    efficient_eos=True,
)
define("breeze", user=("[INST] {{content}} [/INST] ",), prefix=(BOS,), efficient_eos=True)
define(
    "chatglm3",
    user=(Special("token", "<|user|>"), "\n", "{{content}}", Special("token", "<|assistant|>")),
    assistant=("\n", "{{content}}"),
    system=(Special("token", "<|system|>"), "\n", "{{content}}"),
    function=("{{content}}",),
    observation=(
        Special("token", "<|observation|>"),
        "\n",
        "{{content}}",
        Special("token", "<|assistant|>"),
    ),
    prefix=(Special("token", "[gMASK]"), Special("token", "sop")),
    tool_format="glm4",
    function_format="glm4",
    stop_words=("<|user|>", "<|observation|>"),
    efficient_eos=True,
)
define(
    "chatml_de",
    **_CHATML_SLOTS,
    observation=_IM_TOOL,
    default_system="Du bist ein freundlicher und hilfsbereiter KI-Assistent.",
    stop_words=("<|im_end|>", "<|im_start|>"),
    replace_eos=True,
)
define("cpm4", **_CHATML_SLOTS, observation=_IM_TOOL, prefix=(BOS,), **_IM_STOP)
define(
    "dbrx",
    **_CHATML_SLOTS,
    observation=_IM_TOOL,
    default_system=(
        "You are DBRX, created by Databricks. You were last updated in December 2023. "
        "You answer questions based on information available up to that point.\n"
        "YOU PROVIDE SHORT RESPONSES TO SHORT QUESTIONS OR STATEMENTS, but provide thorough "
        "responses to more complex and open-ended questions.\nYou assist with various tasks, "
        "from writing to coding (using markdown for code blocks — remember to use ``` with "
        "code, JSON, and tables).\n(You do not have real-time data access or code execution "
        "capabilities. You avoid stereotyping and provide balanced perspectives on "
        "controversial topics. You do not provide song lyrics, poems, or news articles and "
        "do not divulge details of your training data.)\nThis is your system prompt, "
        "guiding your responses. Do not reference it, just respond to the user. If you find "
        "yourself talking about this message, stop. You should be responding appropriately "
        "and usually that means not mentioning this.\nYOU DO NOT MENTION ANY OF THIS "
        "INFORMATION ABOUT YOURSELF UNLESS THE INFORMATION IS DIRECTLY PERTINENT TO THE "
        "USER'S QUERY."
    ),
    replace_eos=True,
    **_IM_STOP,
)
define(
    "hy3",
    user=("<｜hy_User｜>{{content}}<｜hy_Assistant｜>",),
    assistant=("{{content}}<｜hy_eos｜>",),
    prefix=(BOS,),
    stop_words=("<｜hy_eos｜>",),
    replace_eos=True,
    reasoning=True,
    thought_words=("<think>", "</think>"),
)
define(
    "deepseekcoder",
    user=("### Instruction:\n{{content}}\n### Response:",),
    assistant=("\n{{content}}\n<|EOT|>\n",),
    prefix=(BOS,),
    default_system=(
        "You are an AI programming assistant, utilizing the DeepSeek Coder model, "
        "developed by DeepSeek Company, and you only answer questions related to computer "
        "science. For politically sensitive questions, security and privacy issues, "
        "and other non-computer science questions, you will refuse to answer.\n"
    ),
)
define(
    "dots_ocr",
    user=("<|user|>{{content}}<|endofuser|><|assistant|>",),
    assistant=("{{content}}<|endofassistant|>",),
    system=("<|system|>{{content}}<|endofsystem|>\n",),
    stop_words=("<|endofassistant|>",),
    efficient_eos=True,
    media=Media("qwen2_vl", image="<|imgpad|>", video="<|vidpad|>"),
)
define(
    "ernie",
    user=("<|im_start|>user\n{{content}}<|im_end|>\n\n<|im_start|>assistant\n",),
    assistant=("{{content}}<|im_end|>\n\n",),
    system=("<|im_start|>system\n{{content}}<|im_end|>\n\n",),
    observation=("<|im_start|>tool\n{{content}}<|im_end|>\n\n<|im_start|>assistant\n",),
    default_system="<global_setting>\nthink_mode=True\n</global_setting>",
    **_IM_STOP,
)
define(
    "ernie_nothink",
    user=("User: {{content}}\nAssistant: ",),
    assistant=("{{content}}<|end_of_sentence|>",),
    system=("{{content}}\n",),
    prefix=("<|begin_of_sentence|>",),
    stop_words=("<|end_of_sentence|>",),
)
define(
    "ernie_vl",
    user=("User: {{content}}",),
    assistant=("\nAssistant: {{content}}<|end_of_sentence|>",),
    system=("{{content}}\n",),
    stop_words=("<|end_of_sentence|>",),
    replace_eos=True,
    reasoning=True,
    media=Media("ernie_vl", image="<|IMAGE_PLACEHOLDER|>", video="<|VIDEO_PLACEHOLDER|>"),
)
define(
    "exaone",
    user=("[|user|]{{content}}\n[|assistant|]",),
    assistant=("{{content}}", EOS, "\n"),
    system=("[|system|]{{content}}[|endofturn|]\n",),
)
define(
    "falcon_h1",
    **_CHATML_SLOTS,
    observation=_IM_TOOL,
    prefix=(BOS,),
    stop_words=("<|im_end|>", "<|end_of_text|>"),
)
define("fewshot", assistant=("{{content}}\n\n",), efficient_eos=True)
define(
    "gemma3n",
    **like(
        _GEMMA,
        media=Media("gemma3n", image="<image_soft_token>", audio="<audio_soft_token>"),
    ),
    stop_words=("<end_of_turn>",),
    replace_eos=True,
)
define("gemma4", **_GEMMA4, media=Media("gemma4", image="<|image|>", video="<|video|>"))
define(
    "gemma4n",
    **_GEMMA4,
    media=Media("gemma4", image="<|image|>", video="<|video|>", audio="<|audio|>"),
)
define("glm4_moe", **_GLM_MOE, reasoning=True)
define("glm4v", **like(_GLM, **_GLM_VISION), reasoning=True)
define("glm4_5v", **like(_GLM_MOE, **_GLM_VISION), reasoning=True)
define("glm_ocr", **_GLM, media=_GLM_VISION["media"])
define(
    "glm4_7",
    **_GLM_MOE,
    reasoning=True,
    thought_words=("<think>", "</think>"),
    empty_thought_close_only=True,
)
define("glmz1", **_GLM, reasoning=True)
define(
    "gpt_oss",
    user=("<|start|>user<|message|>{{content}}<|end|><|start|>assistant",),
    system=("<|start|>system<|message|>{{content}}<|end|>",),
    default_system="You are ChatGPT, a large language model trained by OpenAI.",
    efficient_eos=True,
    reasoning=True,
    thought_words=(
        "<|channel|>analysis<|message|>",
        "<|end|><|start|>assistant<|channel|>final<|message|>",
    ),
)
define("granite3", **_GRANITE)
define(
    "granite3_vision",
    user=("<|user|>\n{{content}}\n<|assistant|>\n",),
    system=("<|system|>\n{{content}}\n",),
    default_system=_VICUNA_SYSTEM,
    media=_LLAVA_NEXT,
)
define(
    "granite4",
    **_GRANITE,
    observation=(
        "<|start_of_role|>tool<|end_of_role|>{{content}}<|end_of_text|>\n"
        "<|start_of_role|>assistant\n",
    ),
    default_system="You are Granite, developed by IBM. You are a helpful AI assistant.",
    stop_words=("<|end_of_text|>",),
)
define(
    "index",
    user=("reserved_0{{content}}reserved_1",),
    system=("<unk>{{content}}",),
    efficient_eos=True,
)
define(
    "hunyuan",
    user=("{{content}}<|extra_0|>",),
    assistant=("{{content}}<|eos|>",),
    system=("{{content}}<|extra_4|>",),
    prefix=("<|startoftext|>",),
    stop_words=("<|eos|>",),
)
define(
    "hunyuan_small",
    user=("<｜hy_User｜>{{content}}<｜hy_place▁holder▁no▁8｜>",),
    assistant=("{{content}}<｜hy_place▁holder▁no▁2｜>",),
    system=("{{content}}<｜hy_place▁holder▁no▁3｜>",),
    prefix=("<｜hy_begin▁of▁sentence｜>",),
    stop_words=("<｜hy_place▁holder▁no▁2｜>",),
)
define(
    "intern_vl",
    **_CHATML_SLOTS,
    prefix=(BOS,),
    default_system=(
        "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位"
        "联合开发的多模态大语言模型。"
    ),
    media=_INTERN_VL,
    **_IM_STOP,
)
define("intern_s1", **_CHATML_SLOTS, prefix=(BOS,), media=_INTERN_VL, **_IM_STOP)
define("keye_vl", **_QWEN_FAMILY, reasoning=True, media=_QWEN_VL)
define(
    "kimi_vl",
    **_MOONSHOT,
    default_system="You are a helpful assistant",
    reasoning=True,
    thought_words=("◁think▷", "◁/think▷"),
    media=Media("kimi_vl", image="<|media_pad|>"),
)
define("lfm2", **_LFM2, default_system="You are a helpful AI assistant.")
define(
    "lfm2_vl",
    **_LFM2,
    default_system="You are a helpful multimodal assistant by Liquid AI.",
    media=Media("lfm2_vl", image="<image>"),
)
define(
    "llama2_zh",
    user=(BOS, "[INST] {{content}} [/INST]"),
    system=("<<SYS>>\n{{content}}\n<</SYS>>\n\n",),
    default_system="You are a helpful assistant. 你是一个乐于助人的助手。",
    fuse_system=True,
)
define("mllama", **_LLAMA3, media=Media("mllama", image="<|image|>"))
define(
    "moonlight",
    **_MOONSHOT,
    default_system="You are a helpful assistant provided by Moonshot-AI.",
    replace_eos=True,
)
define("llava", **_VICUNA, media=Media("llava", image="<image>"))
define("llava_next", **_VICUNA, media=_LLAVA_NEXT)
define("llava_next_llama3", **_LLAMA3, media=_LLAVA_NEXT)
define("llava_next_mistral", **_MISTRAL_V3, media=_LLAVA_NEXT)
define("llava_next_qwen", **_QWEN_FAMILY, default_system=_HELPFUL, media=_LLAVA_NEXT)
define("llava_next_yi", **_CHATML_SLOTS, media=_LLAVA_NEXT, **_IM_STOP)
define("llava_next_video", **_VICUNA, media=_LLAVA_NEXT_VIDEO)
define("llava_next_video_mistral", **_MISTRAL_V3, media=_LLAVA_NEXT_VIDEO)
define("llava_next_video_yi", **_CHATML_SLOTS, media=_LLAVA_NEXT_VIDEO, **_IM_STOP)
define("mimo", **_QWEN_FAMILY, default_system=_HELPFUL, reasoning=True)
define(
    "mimo_v2",
    **_QWEN_FAMILY,
    default_system="You are MiMo, a helpful AI assistant engineered by Xiaomi.",
    reasoning=True,
    thought_words=("<think>", "</think>"),
)
define(
    "mimo_vl",
    **_QWEN_FAMILY,
    default_system="You are MiMo, an AI assistant developed by Xiaomi.",
    reasoning=True,
    media=_QWEN_VL,
)
define("minicpm_v", **_CHATML_SLOTS, default_system=_HELPFUL, media=_MINICPM_V, **_IM_STOP)
define(
    "minicpm_v_4_6",
    **_CHATML_SLOTS,
    default_system=_HELPFUL,
    media=Media("minicpm_v_4_6", image="<image>", video="<video>"),
    **_IM_STOP,
)
define(
    "minicpm_o",
    **_CHATML_SLOTS,
    default_system=(
        "You are a helpful assistant. You can accept audio and text input and output voice "
        "and text."
    ),
    media=Media("minicpm_v", image="<image>", video="<video>", audio="<audio>"),
    **_IM_STOP,
)
define(
    "minimax1",
    user=(
        "<beginning_of_sentence>user name=user\n{{content}}<end_of_sentence>\n"
        "<beginning_of_sentence>ai name=assistant\n",
    ),
    assistant=("{{content}}<end_of_sentence>\n",),
    system=("<beginning_of_sentence>system ai_setting=assistant\n{{content}}<end_of_sentence>\n",),
    observation=(
        "<beginning_of_sentence>tool name=tools\n{{content}}<end_of_sentence>\n"
        "<beginning_of_sentence>ai name=assistant\n",
    ),
    tool_format="minimax1",
    function_format="minimax1",
    default_system=_HELPFUL,
    stop_words=("<end_of_sentence>",),
)
define(
    "minimax2",
    user=("]~b]user\n{{content}}[e~[\n]~b]ai\n",),
    assistant=("{{content}}[e~[\n",),
    system=("]~!b[]~b]system\n{{content}}[e~[\n",),
    observation=("]~b]tool\n<response>{{content}}</response>[e~[\n]~b]ai\n",),
    tool_format="minimax2",
    function_format="minimax2",
    default_system=(
        "You are a helpful assistant. Your name is MiniMax-M2.1 and is built by MiniMax."
    ),
    stop_words=("[e~[",),
    reasoning=True,
)
define("ministral", **_TEKKEN)
define(
    "mistral_small",
    **like(_TEKKEN, system=("[SYSTEM_PROMPT]{{content}}[/SYSTEM_PROMPT]",), fuse_system=False),
    media=_PIXTRAL,
)
define("ministral3", **_TEKKEN, media=_PIXTRAL)
define(
    "openchat-3.6",
    user=(
        "<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\n{{content}}<|eot_id|>"
        "<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n",
    ),
    prefix=(BOS,),
    stop_words=("<|eot_id|>",),
)
define(
    "opencoder",
    **_CHATML_SLOTS,
    observation=_IM_TOOL,
    default_system="You are OpenCoder, created by OpenCoder Team.",
    **_IM_STOP,
)
define("paligemma", user=("{{content}}\n",), prefix=(BOS,), fuse_system=True, media=_PALIGEMMA)
define(
    "paligemma_chat",
    **like(_GEMMA, system=("{{content}}",), media=_PALIGEMMA),
    stop_words=("<end_of_turn>",),
    replace_eos=True,
)
define(
    "phi_small",
    user=("<|user|>\n{{content}}<|end|>\n<|assistant|>\n",),
    assistant=("{{content}}<|end|>\n",),
    system=("<|system|>\n{{content}}<|end|>\n",),
    # LLaMA-Factory names <|endoftext|> as a prefix in a form that adds no token: none here
    stop_words=("<|end|>",),
    replace_eos=True,
)
define(
    "phi4_mini",
    user=("<|user|>{{content}}<|end|><|assistant|>",),
    assistant=("{{content}}<|end|>",),
    system=("<|system|>{{content}}<|end|>",),
    tool_format="phi4_mini",
    stop_words=("<|end|>",),
    replace_eos=True,
)
define("pixtral", **_TEKKEN, media=_PIXTRAL)
define(
    "qwen2_audio",
    **_CHATML_SLOTS,
    default_system=_HELPFUL,
    replace_eos=True,
    media=Media("qwen2_audio", audio="<|AUDIO|>"),
    **_IM_STOP,
)
define(
    "qwen2_omni",
    **_QWEN_FAMILY,
    default_system=_HELPFUL,
    media=Media("qwen2_omni", image="<|IMAGE|>", video="<|VIDEO|>", audio="<|AUDIO|>"),
)
define("qwen3_omni", **_QWEN_FAMILY, reasoning=True, media=_QWEN_OMNI)
define("qwen3_omni_nothink", **_QWEN_FAMILY, media=_QWEN_OMNI)
define("qwen2_vl", **_QWEN_FAMILY, default_system=_HELPFUL, media=_QWEN_VL)
define("qwen3_vl", **_QWEN_FAMILY, reasoning=True, media=_QWEN3_VL)
define("qwen3_vl_nothink", **_QWEN_FAMILY, media=_QWEN3_VL)
define("qwen3_5", **_QWEN3_5, reasoning=True)
define("qwen3_5_nothink", **_QWEN3_5)
define("qwen3_6", **_QWEN3_5, reasoning=True)
define(
    "sailor",
    user=("<|im_start|>question\n{{content}}<|im_end|>\n<|im_start|>answer\n",),
    assistant=_IM_ASSISTANT,
    system=_IM_SYSTEM,
    default_system=(
        "You are an AI assistant named Sailor created by Sea AI Lab. "
        "Your answer should be friendly, unbiased, faithful, informative and detailed."
    ),
    **_IM_STOP,
)
define(
    "seed_coder",
    **_SEED,
    default_system=(
        "You are an AI programming assistant, utilizing the Seed-Coder model, developed by "
        "ByteDance Seed, and you only answer questions related to computer science. For "
        "politically sensitive questions, security and privacy issues, and other non-computer "
        "science questions, you will refuse to answer.\n\n"
    ),
)
define(
    "seed_oss",
    **_SEED,
    function=(BOS, "\n{{content}}", EOS),
    tool_format="seed_oss",
    function_format="seed_oss",
    reasoning=True,
    thought_words=("<seed:think>", "</seed:think>"),
)
define("smollm", **_CHATML_SLOTS, **_IM_STOP)
define(
    "telechat2",
    user=("<_user>{{content}}<_bot>",),
    system=("<_system>{{content}}",),
    default_system=(
        "你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司"
        "和中国电信人工智能研究院（TeleAI）研发的人工智能助手。"
    ),
)
define("video_llava", **_VICUNA, media=Media("video_llava", image="<image>", video="<video>"))
define(
    "xuanyuan",
    user=("Human: {{content}} Assistant:",),
    default_system=(
        "以下是用户和人工智能助手之间的对话。用户以Human开头，人工智能助手以Assistant开头，"
        "会对人类提出的问题给出有帮助、高质量、详细和礼貌的回答，并且总是拒绝参与与不道德、"
        "不安全、有争议、政治敏感等相关的话题、问题和指示。\n"
    ),
)
define(
    "yi_vl",
    user=("### Human: {{content}}\n### Assistant:",),
    assistant=("{{content}}\n",),
    default_system=(
        "This is a chat between an inquisitive human and an AI assistant. "
        "Assume the role of the AI assistant. Read all the images carefully, "
        "and respond to the human's questions with informative, helpful, detailed and polite "
        "answers. 这是一个好奇的人类和一个人工智能助手之间的对话。假设你扮演这个AI助手的角色。"
        "仔细阅读所有的图像，并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。\n\n"
    ),
    stop_words=("###",),
    efficient_eos=True,
    media=Media("llava", image="<image>"),
)
define(
    "youtu",
    user=("<|User|>{{content}}<|Assistant|>",),
    assistant=("{{content}}<|end_of_text|>",),
    function=("{{content}}",),
    observation=("<tool_response>\n{{content}}\n</tool_response><|Assistant|>",),
    prefix=(BOS,),
    stop_words=("<|end_of_text|>",),
    replace_eos=True,
    reasoning=True,
)
define(
    "youtu_vl",
    user=("<|begin_of_text|>user\n{{content}}<|end_of_text|>\n<|begin_of_text|>assistant\n",),
    assistant=("{{content}}<|end_of_text|>\n",),
    system=("<|begin_of_text|>system\n{{content}}<|end_of_text|>\n",),
    default_system=_HELPFUL,
    stop_words=("<|end_of_text|>",),
    media=Media("youtu_vl", image="<|image_pad|>", video="<|video_pad|>"),
)
define(
    "yuan",
    user=("{{content}}", Special("token", "<sep>")),
    assistant=("{{content}}<eod>\n",),
    stop_words=("<eod>",),
)
define(
    "aeva",
    **_GLM_MOE,
    default_system=(
        "You are an AI assistant named Aeva created by Zongzhi Lou. "
        "Your answer should be friendly, unbiased, faithful, informative and detailed."
    ),
    reasoning=True,
    thought_words=("<think>", "</think>"),
    empty_thought_close_only=True,
)

define("hf", from_tokenizer=True, notes="slots derived from the tokenizer's chat_template")
