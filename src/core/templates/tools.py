"""Tool descriptions (system side) and tool calls (assistant side) in each model family's format."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from tunedeck.core.errors import TemplateError

ToolCall = tuple[str, str]  # (name, arguments as a JSON string)


def describe_tools(tool_format: str, tools_json: str, *, today: _dt.date | None = None) -> str:
    """The text appended to the system message for a row's `tools` JSON ("" for an empty list)."""
    try:
        tools = json.loads(tools_json)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"tools is not valid JSON: {exc.msg}") from None
    if len(tools) == 0:
        return ""
    try:
        if tool_format == "default":
            return _default_tools(tools)
        if tool_format == "qwen":
            return _qwen_tools(tools)
        if tool_format == "glm4":
            return _glm4_tools(tools)
        if tool_format == "llama3":
            return _llama3_tools(tools, today or _dt.date.today())
        if tool_format == "mistral":
            return _mistral_tools(tools)
    except (KeyError, TypeError, AttributeError) as exc:
        raise TemplateError(f"a tool description lacks a required field: {exc}") from None
    raise TemplateError(f"unknown tool format '{tool_format}'")


def format_calls(tool_format: str, calls: list[ToolCall]) -> str:
    """The assistant text for one or more tool calls."""
    if tool_format == "default":
        return "\n".join(f"Action: {name}\nAction Input: {args}" for name, args in calls)
    if tool_format == "qwen":
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
