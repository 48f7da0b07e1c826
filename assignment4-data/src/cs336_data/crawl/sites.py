"""The crawl's pages of each kind, from each source: documentation as packaged, articles, spam, list mail, threads.

Every generator yields :class:`Page` objects whose label says what the page is and where its text comes from.
"""

from __future__ import annotations

import email
import email.policy
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cs336_data.crawl import pages as templates
from cs336_data.crawl.sources import (
    deb_files,
    deb_version,
    fetch_debs,
    fetch_insults,
    fetch_spam_assassin,
    insult_comments,
    spam_assassin_mail,
)

if TYPE_CHECKING:
    from cs336_data.crawl.build import CrawlConfig

HTML_SUFFIXES = (".html", ".htm")
NAMESPACE = uuid.UUID("2f1c1b43-6c0e-4d7e-9a35-4b8f4c2f6a10")


@dataclass
class Page:
    """One crawled page: its URL, the HTML served, and its label (what it is; never read by the filters)."""

    url: str
    html: bytes
    label: dict = field(default_factory=dict)


def stable_uuid(*parts: object) -> str:
    """A UUIDv5 of the parts: the same page gets the same record id in every build."""
    return str(uuid.uuid5(NAMESPACE, "|".join(map(str, parts))))


def _language_of(package: str) -> str:
    """``debian-reference-zh-cn`` -> ``zh-cn``, ``maint-guide-de`` -> ``de``."""
    return "zh-cn" if package.endswith("-zh-cn") else package.rsplit("-", 1)[1]


def documentation_pages(
    config: CrawlConfig, rng: random.Random, packages: tuple[str, ...], translated: bool
) -> Iterator[Page]:
    """Every (or a sample of) HTML page of each package, as the package ships it."""
    for deb in fetch_debs(packages, config.debs_dir):
        files = [
            (path, data)
            for path, data in deb_files(deb, HTML_SUFFIXES)
            if config.max_page_bytes is None or len(data) <= config.max_page_bytes
        ]
        if config.pages_per_package is not None and len(files) > config.pages_per_package:
            files = sorted(rng.sample(files, config.pages_per_package))
        package = deb_version(deb).split("_")[0]
        for path, data in files:
            local = path.removeprefix("./").removeprefix("usr/share/").removeprefix("doc/")
            url = f"https://{package}.docs.sample.invalid/{local}"
            kind = "translation" if translated else "documentation"
            label = {
                "kind": kind,
                "source": deb_version(deb),
                "language": _language_of(package) if translated else "en",
            }
            yield Page(url, data, label)


def article_pages(config: CrawlConfig, rng: random.Random) -> Iterator[Page]:
    """The gensim Wikipedia excerpt and Lee news articles inside a site's chrome (the quality model's positives)."""
    from cs336_basics.english_corpus import lee_documents, wikipedia_documents

    for source, texts, host in (
        ("gensim:wikipedia", list(wikipedia_documents())[: config.wiki_articles], "encyclopedia.sample.invalid"),
        ("gensim:lee", list(lee_documents())[: config.news_articles], "news.sample.invalid"),
    ):
        for i, text in enumerate(texts):
            title = " ".join(text.split()[:6])
            html, pii = templates.article_page(rng, host, title, text, contact=rng.random() < config.contact_fraction)
            label = {"kind": "article", "source": source, "language": "en", "pii": pii, "in_quality_training": True}
            yield Page(f"https://{host}/{source.split(':')[1]}/{i}", html, label)


def _mail_parts(raw: str) -> tuple[email.message.EmailMessage, str | None, str | None]:
    message = email.message_from_string(raw, policy=email.policy.default)
    html_part = plain_part = None
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype not in ("text/html", "text/plain"):
            continue
        try:
            payload = (part.get_payload(decode=True) or b"").decode(part.get_content_charset() or "latin-1")
        except (LookupError, UnicodeDecodeError, AssertionError):
            continue
        if ctype == "text/html" and html_part is None:
            html_part = payload
        elif ctype == "text/plain" and plain_part is None:
            plain_part = payload
    return message, html_part, plain_part


def spam_pages(config: CrawlConfig, rng: random.Random, training_texts: set[str]) -> Iterator[Page]:
    """Spam e-mails served as landing pages (their HTML as is), none of them in the quality model's training set."""
    from cs336_data.quality_training import email_body_text

    data = fetch_spam_assassin()
    mails = [m for group in ("spam-1", "spam-2") for m in spam_assassin_mail(data, group)]
    rng.shuffle(mails)
    count = 0
    for mail in mails:
        if count == config.spam_pages:
            return
        if email_body_text(mail.raw) in training_texts:
            continue
        _, html_part, plain_part = _mail_parts(mail.raw)
        if html_part is None and plain_part is None:
            continue
        host = f"offer-{stable_uuid(mail.name)[:6]}.sample.invalid"
        body = (
            html_part if html_part is not None else f"<html><body><pre>{templates.esc(plain_part)}</pre></body></html>"
        )
        label = {"kind": "spam", "source": f"spamassassin:{mail.group}/{mail.name}", "language": None}
        count += 1
        yield Page(f"http://{host}/deal/{mail.name}.html", body.encode("utf-8"), label)


def mailing_list_pages(config: CrawlConfig, rng: random.Random) -> Iterator[Page]:
    """Ordinary list mail (``easy-ham``) as archive pages: real names, addresses, signatures."""
    data = fetch_spam_assassin()
    mails = [m for group in ("easy-ham-1", "easy-ham-2") for m in spam_assassin_mail(data, group)]
    for mail in sorted(rng.sample(mails, min(config.mailing_list_pages, len(mails))), key=lambda m: m.name):
        message, _, plain = _mail_parts(mail.raw)
        if not plain or not plain.strip():
            continue
        subject = str(message.get("Subject", "(no subject)"))
        tag = re.search(r"\[([\w.-]+)\]", subject)  # the list's tag, e.g. [Razor-users] or [ILUG]
        list_name = tag.group(1) if tag else "users"
        html = templates.mailing_list_page(
            rng, list_name, subject, str(message.get("From", "")), str(message.get("Date", "")), plain
        )
        label = {"kind": "mailing_list", "source": f"spamassassin:{mail.group}/{mail.name}", "language": "en"}
        yield Page(f"https://lists.sample.invalid/pipermail/{list_name.lower()}/{mail.name}.html", html, label)


def forum_pages(config: CrawlConfig, rng: random.Random) -> Iterator[Page]:
    """Comment threads of 4-14 labelled comments each (about a quarter of the comments are insults)."""
    comments = insult_comments(fetch_insults())
    rng.shuffle(comments)
    pos = 0
    for thread in range(config.forum_threads):
        n = rng.randint(4, 14)
        chosen, pos = comments[pos : pos + n], pos + n
        if len(chosen) < 4:
            return
        host = rng.choice(("forum", "comments", "talk", "board")) + ".sample.invalid"
        label = {
            "kind": "forum",
            "source": "insults",
            "language": "en",
            "comments": len(chosen),
            "insults": sum(c.insult for c in chosen),
        }
        yield Page(
            f"https://{host}/thread/{thread}", templates.forum_thread(rng, host, [c.text for c in chosen]), label
        )


def thin_pages(config: CrawlConfig, rng: random.Random) -> Iterator[Page]:
    for i in range(config.thin_pages):
        host = f"site{rng.randint(1, 300)}.sample.invalid"
        yield Page(f"https://{host}/p/{i}", templates.thin_page(rng, host), {"kind": "thin", "source": "template"})


def quality_training_texts() -> set[str]:
    """The ``cc`` texts the shipped quality model was trained on (its split, recomputed), to keep them out."""
    from cs336_data.quality_training import QualityTrainingConfig, labelled_examples

    config = QualityTrainingConfig(spam_dir=fetch_spam_assassin(), output=Path("unused"))
    examples = labelled_examples(config)
    train = examples[int(len(examples) * config.held_out_fraction) :]
    return {text for label, text in train if label == "cc"}
