"""PII masking: the course's cases plus other common formats and non-matches."""

import pytest
from cs336_data.pii import mask_pii

from .adapters import run_mask_emails, run_mask_ips, run_mask_phone_numbers


def test_mask_emails():
    text = "Contact me at test@gmail.com or jane.doe+news@mail.example.co.uk for details."
    masked, n = run_mask_emails(text)
    assert n == 2
    assert masked == "Contact me at |||EMAIL_ADDRESS||| or |||EMAIL_ADDRESS||| for details."


def test_mask_emails_keeps_existing_placeholder_uncounted():
    masked, n = run_mask_emails("Write to |||EMAIL_ADDRESS||| or a@b.org")
    assert (masked, n) == ("Write to |||EMAIL_ADDRESS||| or |||EMAIL_ADDRESS|||", 1)
    assert run_mask_emails("no address here @ all") == ("no address here @ all", 0)


@pytest.mark.parametrize(
    "number",
    [
        "2831823829",
        "(283)-182-3829",
        "(283) 182 3829",
        "283-182-3829",
        "283.182.3829",
        "+1 283 182 3829",
        "+1-283-182-3829",
        "1 (283) 182-3829",
    ],
)
def test_mask_phone_numbers(number):
    masked, n = run_mask_phone_numbers(f"Feel free to contact me at {number} if you have any questions.")
    assert n == 1
    assert masked == "Feel free to contact me at |||PHONE_NUMBER||| if you have any questions."


def test_phone_mask_leaves_other_numbers():
    text = "Order 12345678901234 shipped in 2024; ISBN 978-0-13-110362-7."
    assert run_mask_phone_numbers(text) == (text, 0)


def test_mask_ips():
    masked, n = run_mask_ips("You can access the server at 192.0.2.146.")
    assert (masked, n) == ("You can access the server at |||IP_ADDRESS|||.", 1)
    masked, n = run_mask_ips("from 10.0.0.1 to 255.255.255.255")
    assert (masked, n) == ("from |||IP_ADDRESS||| to |||IP_ADDRESS|||", 2)


def test_ip_octets_above_255_and_version_strings_are_not_ips():
    for text in ("256.1.1.1 is invalid", "version 1.2.3.4.5 released", "999.999.999.999"):
        assert run_mask_ips(text) == (text, 0)


def test_mask_pii_counts_each_kind():
    masked, counts = mask_pii("mail a@b.com, call 283-182-3829, ping 8.8.8.8")
    assert masked == "mail |||EMAIL_ADDRESS|||, call |||PHONE_NUMBER|||, ping |||IP_ADDRESS|||"
    assert counts == {"emails": 1, "phone_numbers": 1, "ips": 1}
