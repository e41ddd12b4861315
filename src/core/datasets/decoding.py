"""What to say about bytes that do not decode: the byte and where it is, never codec jargon
("surrogates not allowed"). Only error paths call these; clean rows never pay for them."""

from __future__ import annotations

BOM = b"\xef\xbb\xbf"


def utf8_message(
    data: bytes, error: UnicodeDecodeError, offset: int = 0, line: int | None = None
) -> str:
    """'invalid UTF-8 on line L: byte 0xff at byte offset N' for an error decoding `data`,
    which starts at byte `offset` of its file."""
    where = f" on line {line}" if line is not None else ""
    return f"invalid UTF-8{where}: byte 0x{data[error.start]:02x} at byte offset {offset + error.start}"


def json_problem(data: bytes, message: str, offset: int = 0, line: int | None = None) -> str:
    """Why a JSON text failed to parse: its UTF-8 problem if it has one, else the parser's."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return utf8_message(data, error, offset, line)
    where = f" on line {line}" if line is not None else ""
    return f"invalid JSON{where}: {message}"
