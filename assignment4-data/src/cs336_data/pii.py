"""Masking of personal identifiable information: e-mail addresses, phone numbers, IPv4 addresses.

Each masker returns the masked text and how many replacements it made. Placeholders already in the text contain no
characters the patterns match, so they are kept and not counted again.
"""

from __future__ import annotations

import re

EMAIL_PLACEHOLDER = "|||EMAIL_ADDRESS|||"
PHONE_PLACEHOLDER = "|||PHONE_NUMBER|||"
IP_PLACEHOLDER = "|||IP_ADDRESS|||"

# Local part and dotted domain with a 2+ letter TLD (RFC 5322's quoted local parts are too rare on the web to matter).
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{}~-]+"
EMAIL_RE = re.compile(rf"{_LOCAL}(?:\.{_LOCAL})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{{2,}}")

# North American numbers: optional +1 / 1 country code, area code with or without parentheses, then 3 + 4 digits,
# separated by nothing, one space, a dash or a dot (and "(283)-182-3829"). Not part of a longer digit run.
_SEP = r"[ .\-]?"
PHONE_RE = re.compile(rf"(?<![\w+])(?:\+?1{_SEP})?(?:\(\d{{3}}\){_SEP}|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}(?!\d)")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Four octets, not glued to other digits or dots-then-digits (so "1.2.3.4.5" is a version string, not an address),
# but a sentence-final full stop stays outside the match.
IPV4_RE = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d]|\.\d)")


def _mask(pattern: re.Pattern[str], placeholder: str, text: str) -> tuple[str, int]:
    return pattern.subn(placeholder, text)


def mask_emails(text: str) -> tuple[str, int]:
    return _mask(EMAIL_RE, EMAIL_PLACEHOLDER, text)


def mask_phone_numbers(text: str) -> tuple[str, int]:
    return _mask(PHONE_RE, PHONE_PLACEHOLDER, text)


def mask_ips(text: str) -> tuple[str, int]:
    return _mask(IPV4_RE, IP_PLACEHOLDER, text)


def mask_pii(text: str) -> tuple[str, dict[str, int]]:
    """All three maskers; e-mails first so their digits are never read as phone numbers or addresses."""
    text, emails = mask_emails(text)
    text, ips = mask_ips(text)
    text, phones = mask_phone_numbers(text)
    return text, {"emails": emails, "phone_numbers": phones, "ips": ips}
