"""HTML bytes to plain text: decode robustly, then let resiliparse find the visible text."""

from __future__ import annotations

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding


def decode_html_bytes(html_bytes: bytes) -> str:
    """UTF-8 first (98% of the web); otherwise the encoding resiliparse detects, with undecodable bytes replaced."""
    try:
        return html_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return bytes_to_str(html_bytes, detect_encoding(html_bytes))


def extract_text_from_html_bytes(html_bytes: bytes) -> str:
    """Visible text of an HTML page, exactly as resiliparse's ``extract_plain_text`` gives it with default options."""
    return extract_plain_text(decode_html_bytes(html_bytes))
