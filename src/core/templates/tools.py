"""Tool descriptions (system side) and tool calls (assistant side) in each model family's format."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from tunedeck.core.errors import TemplateError

ToolCall = tuple[str, str]  # (name, arguments as a JSON string)


def describe_tools(tool_format: str, tools_json: str, *, today: _dt.date | None = None) -> str:
    """The text appended to the system message for a row's `tools` JSON ("" for an empty list)."""
    if tool_format == "phi4_mini":  # the row's JSON as written, inside the tool tags
        return f"<|tool|>{tools_json}<|/tool|>"
    try:
        tools = json.loads(tools_json)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"tools is not valid JSON: {exc.msg}") from None
    if len(tools) == 0:
        return ""
    if tool_format == "llama3":
        return _guarded(_llama3_tools, tools, today or _dt.date.today())
    describe = _DESCRIBERS.get(tool_format)
    if describe is None:
        raise TemplateError(f"unknown tool format '{tool_format}'")
    return _guarded(describe, tools)


def _guarded(describe, *args) -> str:
    try:
        return describe(*args)
    except (KeyError, TypeError, AttributeError) as exc:
        raise TemplateError(f"a tool description lacks a required field: {exc}") from None


def format_calls(tool_format: str, calls: list[ToolCall]) -> str:
    """The assistant text for one or more tool calls."""
    formatter = _CALL_FORMATTERS.get(tool_format)
    if formatter is not None:
        try:
            return formatter(calls)
        except AttributeError:
            raise TemplateError(
                f"the {tool_format} call format needs each call's arguments as an object"
            ) from None
    if tool_format == "default":
        return "\n".join(f"Action: {name}\nAction Input: {args}" for name, args in calls)
    if tool_format in ("qwen", "ling"):
        return "\n".join(
            "<tool_call>\n"
            + _dumps({"name": name, "arguments": json.loads(args)})
            + "\n</tool_call>"
            for name, args in calls
        )
    if tool_format == "glm4":
        if len(calls) > 1:
            raise TemplateError("the glm4 format cannot express parallel tool calls")
        return f"{calls[0][0]}\n{calls[0][1]}"
    if tool_format == "llama3":
        objects = [{"name": name, "parameters": json.loads(args)} for name, args in calls]
        return _dumps(objects[0] if len(objects) == 1 else objects)
    if tool_format == "mistral":
        return _dumps([{"name": name, "arguments": json.loads(args)} for name, args in calls])
    raise TemplateError(f"unknown tool format '{tool_format}'")


def parse_calls(text: str) -> list[ToolCall]:
    """Tool calls from a `function` message: one JSON object or a list of {name, arguments}."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise TemplateError(f"function message is not valid JSON: {text[:80]!r}") from None
    if not isinstance(value, list):
        value = [value]
    try:
        return [(call["name"], _dumps(call["arguments"])) for call in value]
    except (KeyError, TypeError):
        raise TemplateError(
            "a function call needs 'name' and 'arguments'", hint=f"got {text[:80]!r}"
        ) from None


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _unwrap(tool: dict) -> dict:
    return tool.get("function", "") if tool.get("type") == "function" else tool


def _wrap(tool: dict) -> dict:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def _default_tools(tools: list[dict]) -> str:
    blocks, names = [], []
    for raw in tools:
        tool = _unwrap(raw)
        params = tool["parameters"]
        lines = ""
        for pname, param in params["properties"].items():
            required = ", required" if pname in params.get("required", []) else ""
            enum = ""
            if param.get("enum", None):
                enum = ", should be one of [" + ", ".join(param["enum"]) + "]"
            items = ""
            if param.get("items", None):
                items = ", where each item should be " + str(param["items"].get("type", ""))
            lines += (
                f"  - {pname} ({param.get('type', '')}{required}): "
                f"{param.get('description', '')}{enum}{items}\n"
            )
        blocks.append(
            f"> Tool Name: {tool['name']}\nTool Description: {tool.get('description', '')}\n"
            f"Tool Args:\n{lines}\n"
        )
        names.append(tool["name"])
    return (
        "You have access to the following tools:\n"
        + "".join(blocks)
        + "Use the following format if using a tool:\n```\n"
        + f"Action: tool name (one of [{', '.join(names)}])\n"
        + "Action Input: the input to the tool, in a JSON format representing the kwargs "
        + '(e.g. ```{"input": "hello world", "num_beams": 5}```)\n```\n'
    )


def _qwen_tools(tools: list[dict]) -> str:
    listing = "".join("\n" + _dumps(_wrap(tool)) for tool in tools)
    return (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + listing
        + "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def _glm4_tools(tools: list[dict]) -> str:
    listing = ""
    for raw in tools:
        tool = _unwrap(raw)
        listing += (
            f"\n\n## {tool['name']}\n\n{_dumps(tool, indent=4)}\n"
            "在调用上述函数时，请使用 Json 格式表示调用的参数。"
        )
    return (
        "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 "
        "模型开发的，你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具" + listing
    )


def _llama3_tools(tools: list[dict], today: _dt.date) -> str:
    listing = "".join(_dumps(_wrap(tool), indent=4) + "\n\n" for tool in tools)
    return (
        f"Cutting Knowledge Date: December 2023\nToday Date: {today.strftime('%d %b %Y')}\n\n"
        "You have access to the following functions. To call a function, please respond with "
        "JSON for a function call. Respond in the format "
        '{"name": function name, "parameters": dictionary of argument name and its value}. '
        "Do not use variables.\n\n" + listing
    )


def _mistral_tools(tools: list[dict]) -> str:
    return "[AVAILABLE_TOOLS] " + _dumps([_wrap(t) for t in tools]) + "[/AVAILABLE_TOOLS]"


# -- the tool formats of newer model families ------------------------------------------------

_TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_QWEN_CALL_ASK = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_GLM4_MOE_CALL_ASK = (
    "\n</tools>\n\nFor each function call, output the function name and arguments within "
    "the following XML format:\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>"
    "\n<arg_value>{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>"
    "\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>\n"
)
_QWEN3_5_CALL_ASK = (
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with "
    "NO suffix:\n\n<tool_call>\n<function=example_function_name>\n"
    "<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>"
    "\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: an inner <function=...></function> "
    "block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE "
    "the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n</IMPORTANT>"
)
_SEED_INTRO = (
    "system\nYou are Doubao, a helpful AI assistant. You may call one or more functions to "
    "assist with the user query.Tool List:\nYou are authorized to use the following tools "
    "(described in JSON Schema format). Before performing any task, you must decide how to "
    "call them based on the descriptions and parameters of these tools."
)
_SEED_CALL_ASK = (
    "\n工具调用请遵循如下格式:\n<seed:tool_call>\n<function=example_function_name>\n"
    "<parameter=example_parameter_1>value_1</parameter>\n<parameter=example_parameter_2>"
    "This is the value for the second parameter\nthat can span\nmultiple lines</parameter>\n"
    "</function>\n</seed:tool_call>\n"
)
_MINIMAX1_CALL_ASK = (
    "</tools>\n\nIf you need to call tools, please respond with <tool_calls></tool_calls> XML "
    "tags, and provide tool-name and json-object of arguments, following the format below:\n"
    '<tool_calls>\n{"name": <tool-name-1>, "arguments": <args-json-object-1>}\n...\n'
    "</tool_calls>"
)
_MINIMAX2_INTRO = (
    "\n\n# Tools\n\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n"
)
_MINIMAX2_CALL_ASK = (
    "</tools>\n\nWhen making tool calls, use XML format to invoke tools and pass parameters:\n"
    '\n<minimax:tool_call>\n<invoke name="tool-name-1">\n'
    '<parameter name="param-key-1">param-value-1</parameter>\n'
    '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n'
    "</minimax:tool_call>"
)
_GEMMA4_QUOTE = '<|"|>'


def _function_of(tool: dict) -> dict:
    """The function inside an OpenAI-style tool entry (the entry itself when it is bare)."""
    return tool.get("function", tool) if tool.get("type") == "function" else tool


def _text_value(value: Any) -> str:
    """A call argument as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else _dumps(value)


def _wrapped_listing(tools: list[dict]) -> str:
    return "".join("\n" + _dumps(_wrap(tool)) for tool in tools)


def _glm4_moe_tools(tools: list[dict]) -> str:
    return "\n\n" + _TOOLS_INTRO + _wrapped_listing(tools) + _GLM4_MOE_CALL_ASK


def _ling_tools(tools: list[dict]) -> str:
    return _TOOLS_INTRO + _wrapped_listing(tools) + _QWEN_CALL_ASK + "\ndetailed thinking off"


def _qwen3_5_tools(tools: list[dict]) -> str:
    listing = "".join("\n" + _dumps(_function_of(tool)) for tool in tools)
    return (
        "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>"
        + listing
        + _QWEN3_5_CALL_ASK
    )


def _seed_tools(tools: list[dict]) -> str:
    return _SEED_INTRO + "\n" + _dumps(tools) + _SEED_CALL_ASK


def _lfm2_tools(tools: list[dict]) -> str:
    listing = _dumps([_function_of(tool) for tool in tools])
    return f"List of tools: <|tool_list_start|>{listing}<|tool_list_end|>"


def _minimax1_tools(tools: list[dict]) -> str:
    listing = "".join(_dumps(_unwrap(tool)) + "\n" for tool in tools)
    return "You are provided with these tools:\n<tools>\n" + listing + _MINIMAX1_CALL_ASK


def _minimax2_tools(tools: list[dict]) -> str:
    listing = "".join("<tool>" + _dumps(_unwrap(tool)) + "</tool>\n" for tool in tools)
    return _MINIMAX2_INTRO + listing + _MINIMAX2_CALL_ASK


def _gemma4_quoted(text: Any) -> str:
    return f"{_GEMMA4_QUOTE}{text}{_GEMMA4_QUOTE}"


def _gemma4_properties(properties: dict) -> str:
    parts = []
    for name, schema in properties.items():
        fields = []
        if schema.get("description"):
            fields.append("description:" + _gemma4_quoted(schema["description"]))
        if schema.get("type"):
            fields.append("type:" + _gemma4_quoted(str(schema["type"]).upper()))
        parts.append(f"{name}:{{{','.join(fields)}}}")
    return ",".join(parts)


def _gemma4_declaration(tool: dict) -> str:
    function = _function_of(tool)
    text = f"declaration:{function['name']}{{description:"
    text += _gemma4_quoted(function.get("description", ""))
    params = function.get("parameters")
    if params:
        parts = []
        if params.get("properties"):
            parts.append(f"properties:{{{_gemma4_properties(params['properties'])}}}")
        if params.get("required"):
            parts.append("required:[" + ",".join(map(_gemma4_quoted, params["required"])) + "]")
        if params.get("type"):
            parts.append("type:" + _gemma4_quoted(str(params["type"]).upper()))
        text += f",parameters:{{{','.join(parts)}}}"
    response = function.get("response")
    if response:
        parts = []
        if response.get("description"):
            parts.append("description:" + _gemma4_quoted(response["description"]))
        if str(response.get("type", "")).upper() == "OBJECT":
            parts.append("type:" + _gemma4_quoted("OBJECT"))
        text += f",response:{{{','.join(parts)}}}"
    return text + "}"


def _gemma4_tools(tools: list[dict]) -> str:
    return "\n".join(_gemma4_declaration(tool) for tool in tools)


def _gemma4_value(value: Any, quote_keys: bool) -> str:
    """One argument value in Gemma 4's call syntax (strings quoted, keys sorted)."""
    if isinstance(value, str):
        return _gemma4_quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        items = []
        for key in sorted(value):
            shown = _gemma4_quoted(key) if quote_keys else str(key)
            items.append(f"{shown}:{_gemma4_value(value[key], quote_keys)}")
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_gemma4_value(item, quote_keys) for item in value) + "]"
    if value is None:
        return "null"
    return str(value)


def _gemma4_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        value = json.loads(args)
        if isinstance(value, dict):
            body = ",".join(f"{k}:{_gemma4_value(value[k], False)}" for k in sorted(value))
        elif isinstance(value, str):
            body = value
        else:
            body = _gemma4_value(value, False)
        texts.append(f"<|tool_call>call:{name}{{{body}}}<tool_call|>")
    return "".join(texts)


def _glm4_moe_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        text = "\n<tool_call>" + name
        for key, value in json.loads(args).items():
            text += f"\n<arg_key>{key}</arg_key>\n<arg_value>{_text_value(value)}</arg_value>"
        texts.append(text)
    return "\n".join(texts)


def _qwen3_5_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        text = f"<tool_call>\n<function={name}>"
        for key, value in json.loads(args).items():
            text += f"\n<parameter={key}>\n{_text_value(value)}\n</parameter>"
        texts.append(text + "\n</function>\n</tool_call>")
    return "\n".join(texts)


def _seed_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        text = f"\n<seed:tool_call>\n<function={name}"
        for key, value in json.loads(args).items():
            text += f"\n<parameter={key}>{_text_value(value)}</parameter>"
        texts.append(text + "\n</function>\n</seed:tool_call>")
    return "\n".join(texts)


def _lfm2_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        kwargs = []
        for key, value in json.loads(args).items():
            kwargs.append(
                f'{key}="{value}"' if isinstance(value, str) else f"{key}={_dumps(value)}"
            )
        texts.append(f"{name}({', '.join(kwargs)})")
    return f"<|tool_call_start|>[{', '.join(texts)}]<|tool_call_end|>"


def _minimax1_calls(calls: list[ToolCall]) -> str:
    lines = [_dumps({"name": name, "arguments": json.loads(args)}) for name, args in calls]
    return "<tool_calls>\n" + "\n".join(lines) + "\n</tool_calls>"


def _minimax2_calls(calls: list[ToolCall]) -> str:
    texts = []
    for name, args in calls:
        text = f'<invoke name="{name}">'
        for key, value in json.loads(args).items():
            text += f'\n<parameter name="{key}">{_text_value(value)}</parameter>'
        texts.append(text + "\n</invoke>")
    return "\n".join(texts)


_DESCRIBERS = {
    "default": _default_tools,
    "qwen": _qwen_tools,
    "glm4": _glm4_tools,
    "mistral": _mistral_tools,
    "gemma4": _gemma4_tools,
    "glm4_moe": _glm4_moe_tools,
    "ling": _ling_tools,
    "lfm2": _lfm2_tools,
    "minimax1": _minimax1_tools,
    "minimax2": _minimax2_tools,
    "qwen3_5": _qwen3_5_tools,
    "seed_oss": _seed_tools,
}
_CALL_FORMATTERS = {
    "gemma4": _gemma4_calls,
    "glm4_moe": _glm4_moe_calls,
    "lfm2": _lfm2_calls,
    "minimax1": _minimax1_calls,
    "minimax2": _minimax2_calls,
    "qwen3_5": _qwen3_5_calls,
    "seed_oss": _seed_calls,
}
