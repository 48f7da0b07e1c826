"""GPT-2's reversible map between bytes and printable unicode characters.

GPT-2 stores its vocabulary and merges as text; every byte is shown as a printable character so that
spaces, newlines and control bytes survive JSON and whitespace-separated merge files. Printable ASCII and
Latin-1 bytes map to themselves; the other 68 bytes map to ``chr(256 + n)`` in byte order.
"""

from __future__ import annotations

from functools import cache


@cache
def bytes_to_unicode() -> dict[int, str]:
    """Byte value -> printable character, exactly GPT-2's ``bytes_to_unicode``."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@cache
def unicode_to_bytes() -> dict[str, int]:
    """Inverse of :func:`bytes_to_unicode`."""
    return {char: b for b, char in bytes_to_unicode().items()}


def encode_token(token: bytes) -> str:
    """Bytes of a token -> GPT-2's printable string."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def decode_token(text: str) -> bytes:
    """GPT-2's printable string -> bytes of the token; a clear error for characters outside the alphabet."""
    table = unicode_to_bytes()
    try:
        return bytes(table[char] for char in text)
    except KeyError as err:
        raise ValueError(f"{text!r} contains {err.args[0]!r}, which is not in GPT-2's byte alphabet") from None
