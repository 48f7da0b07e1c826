"""Build the sample crawl: WARC (``request`` + ``response`` records) and WET (``conversion``) shards, with labels.

Pages, in the proportions of :class:`CrawlConfig`: English documentation (Debian's HTML manuals as they are, with
their own navigation), translated documentation, encyclopedia and news articles inside a site's chrome, spam,
mailing-list archive messages (addresses, phone numbers, IPs), comment threads (some insulting), thin pages, exact
copies at other URLs and near-copies on mirrors; some pages get a contact footer. Every page's label (what it is,
where its text comes from, what a copy is a copy of) goes to ``labels/<shard>.jsonl``: the filters never read it;
the write-up and the classifier evaluation do.

Held out: a random share of the English documentation and article pages never enter the crawl. Their main
content, less every line that also occurs in a crawl page, is ``heldout.jsonl``: clean documents that neither a
model trained on the raw crawl nor one trained on its filtered output has seen.

Deterministic: the same sources and config give byte-identical files (seeded choices, UUIDv5 record ids, gzip
without timestamps); ``manifest.json`` records the source versions and each file's SHA-256. A finished build with
the same config is reused.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import gzip
import hashlib
import json
import os
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from resiliparse.extract.html2text import extract_plain_text

from cs336_data.crawl import pages as P
from cs336_data.crawl.sources import (
    ENGLISH_PACKAGES,
    TRANSLATED_PACKAGES,
    deb_files,
    deb_version,
    fetch_debs,
    fetch_insults,
    fetch_spam_assassin,
    insult_comments,
    spam_assassin_mail,
)
from cs336_data.extraction import decode_html_bytes, extract_text_from_html_bytes
from cs336_data.warc_io import warc_record_bytes, warc_request_bytes, warcinfo_record_bytes

HTML_SUFFIXES = (".html", ".htm")
NAMESPACE = uuid.UUID("2f1c1b43-6c0e-4d7e-9a35-4b8f4c2f6a10")


@dataclass(frozen=True)
class CrawlConfig:
    out_dir: Path
    shards: int = 4
    seed: int = 0
    english_packages: tuple[str, ...] = ENGLISH_PACKAGES
    translated_packages: tuple[str, ...] = TRANSLATED_PACKAGES
    pages_per_package: int | None = None  # None: every HTML page of each package
    max_page_bytes: int | None = None  # skip larger pages (keeps a shipped sample small)
    heldout_fraction: float = 0.06
    wiki_articles: int = 101
    news_articles: int = 350
    spam_pages: int = 1000
    mailing_list_pages: int = 1500
    forum_threads: int = 400
    thin_pages: int = 400
    contact_fraction: float = 0.1
    exact_copy_fraction: float = 0.05
    near_copy_fraction: float = 0.08
    debs_dir: Path | None = None

    def key(self) -> str:
        fields = {k: str(v) for k, v in dataclasses.asdict(self).items() if k not in ("out_dir", "debs_dir")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


# Settings of the two builds: ``full`` (the experiment's crawl) and ``small`` (the ~1 MB sample shipped in git).
PRESETS: dict[str, dict] = {
    "full": {},
    "small": {
        "shards": 1,
        "pages_per_package": 6,
        "max_page_bytes": 30_000,
        "heldout_fraction": 0.1,
        "wiki_articles": 6,
        "news_articles": 12,
        "spam_pages": 14,
        "mailing_list_pages": 14,
        "forum_threads": 6,
        "thin_pages": 10,
        "exact_copy_fraction": 0.08,
        "near_copy_fraction": 0.15,
        "contact_fraction": 0.2,
    },
}


@dataclass
class Page:
    url: str
    html: bytes
    label: dict = field(default_factory=dict)


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(map(str, parts))))


def _main_text(html: bytes) -> str:
    return extract_plain_text(decode_html_bytes(html), main_content=True)


# ---- pages from each source ------------------------------------------------------------------------------------


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
            html, pii = P.article_page(rng, host, title, text, contact=rng.random() < config.contact_fraction)
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
        host = f"offer-{_uuid(mail.name)[:6]}.sample.invalid"
        body = html_part if html_part is not None else f"<html><body><pre>{P.esc(plain_part)}</pre></body></html>"
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
        html = P.mailing_list_page(
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
        yield Page(f"https://{host}/thread/{thread}", P.forum_thread(rng, host, [c.text for c in chosen]), label)


def thin_pages(config: CrawlConfig, rng: random.Random) -> Iterator[Page]:
    for i in range(config.thin_pages):
        host = f"site{rng.randint(1, 300)}.sample.invalid"
        yield Page(f"https://{host}/p/{i}", P.thin_page(rng, host), {"kind": "thin", "source": "template"})


# ---- assembly ----------------------------------------------------------------------------------------------------


def _with_contacts(page: Page, rng: random.Random, fraction: float) -> Page:
    """Give a documentation page a contact footer (before ``</body>``), as many sites do."""
    if page.label["kind"] not in ("documentation", "translation") or rng.random() >= fraction:
        return page
    host = page.url.split("/")[2]
    block, pii = P.contact_block(rng, host)
    text = page.html.decode("utf-8", errors="replace")
    cut = text.lower().rfind("</body>")
    text = text[:cut] + block + text[cut:] if cut != -1 else text + block
    return Page(page.url, text.encode("utf-8"), {**page.label, "pii": pii})


def _copies(pages: list[Page], rng: random.Random, config: CrawlConfig) -> list[Page]:
    copies = []
    for page in pages:
        if page.label["kind"] == "thin":
            continue
        if rng.random() < config.exact_copy_fraction:
            url = page.url + ("&" if "?" in page.url else "?") + f"utm_source=feed{rng.randint(1, 99)}"
            copies.append(Page(url, page.html, {**page.label, "copy": "exact", "copy_of": page.url}))
        if page.label["kind"] in ("documentation", "article") and rng.random() < config.near_copy_fraction:
            host = f"mirror{rng.randint(1, 40)}.sample.invalid"
            url = f"https://{host}/{page.url.split('/', 3)[3]}"
            html = P.near_copy(rng, page.html, host)
            copies.append(Page(url, html, {**page.label, "copy": "near", "copy_of": page.url}))
    return copies


def _quality_training_texts() -> set[str]:
    """The ``cc`` texts the shipped quality model was trained on (its split, recomputed), to keep them out."""
    from cs336_data.quality_training import QualityTrainingConfig, labelled_examples

    config = QualityTrainingConfig(spam_dir=fetch_spam_assassin(), output=Path("unused"))
    examples = labelled_examples(config)
    train = examples[int(len(examples) * config.held_out_fraction) :]
    return {text for label, text in train if label == "cc"}


def collect_pages(config: CrawlConfig) -> tuple[list[Page], list[Page]]:
    """``(crawl pages in crawl order, held-out pages)``."""
    rng = random.Random(config.seed)
    english = list(documentation_pages(config, rng, config.english_packages, translated=False))
    english += article_pages(config, rng)
    heldout = [p for p in english if rng.random() < config.heldout_fraction and len(_main_text(p.html)) >= 1000]
    held_urls = {p.url for p in heldout}
    pages = [p for p in english if p.url not in held_urls]
    pages += documentation_pages(config, rng, config.translated_packages, translated=True)
    pages += spam_pages(config, rng, _quality_training_texts())
    pages += mailing_list_pages(config, rng)
    pages += forum_pages(config, rng)
    pages += thin_pages(config, rng)
    pages = [_with_contacts(p, rng, config.contact_fraction) for p in pages]
    pages += _copies(pages, rng, config)
    rng.shuffle(pages)
    return pages, heldout


def heldout_documents(heldout: list[Page], crawl_texts: list[str]) -> list[dict]:
    """Main content of the held-out pages with every line that also occurs in the crawl removed."""
    seen = {line.strip() for text in crawl_texts for line in text.splitlines() if line.strip()}
    documents = []
    for page in heldout:
        lines = [line for line in _main_text(page.html).splitlines() if line.strip() and line.strip() not in seen]
        text = "\n".join(lines)
        if len(text) >= 1000:
            documents.append(
                {"url": page.url, "kind": page.label["kind"], "source": page.label["source"], "text": text}
            )
    return documents


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _member(record: bytes) -> bytes:
    return gzip.compress(record, compresslevel=6, mtime=0)


def write_shard(pages: list[Page], name: str, out_dir: Path) -> dict[str, str]:
    """``<name>.warc.gz`` (request + response per page), ``<name>.warc.wet.gz`` (text), ``labels/<name>.jsonl``."""
    warc = [_member(warcinfo_record_bytes(f"{name}.warc.gz", _uuid(name, "warcinfo")))]
    wet = [_member(warcinfo_record_bytes(f"{name}.warc.wet.gz", _uuid(name, "wetinfo")))]
    labels = []
    for page in pages:
        response_id = _uuid(name, page.url, "response")
        warc.append(_member(warc_request_bytes(page.url, _uuid(name, page.url, "request"))))
        warc.append(_member(warc_record_bytes(page.url, page.html, record_id=response_id)))
        text = extract_text_from_html_bytes(page.html) or ""
        wet.append(
            _member(
                warc_record_bytes(
                    page.url, text.encode("utf-8"), extracted_text=True, record_id=_uuid(name, page.url, "conversion")
                )
            )
        )
        labels.append(json.dumps({"record_id": f"<urn:uuid:{response_id}>", "url": page.url, **page.label}))
    files = {
        f"{name}.warc.gz": b"".join(warc),
        f"{name}.warc.wet.gz": b"".join(wet),
        f"labels/{name}.jsonl": ("\n".join(labels) + "\n").encode("utf-8"),
    }
    for rel, data in files.items():
        _write_atomic(out_dir / rel, data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def build_crawl(config: CrawlConfig, progress: bool = True) -> dict:
    """Write the crawl under ``config.out_dir`` (or reuse a finished build of the same config); returns the manifest."""
    out = Path(config.out_dir)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_key") == config.key():
            return manifest
    pages, heldout = collect_pages(config)
    crawl_texts = []
    files: dict[str, str] = {}
    for shard in range(config.shards):
        shard_pages = pages[shard :: config.shards]
        files |= write_shard(shard_pages, f"CC-SAMPLE-{shard:05d}", out)
        crawl_texts += [extract_text_from_html_bytes(p.html) or "" for p in shard_pages]
        if progress:
            print(f"shard {shard}: {len(shard_pages)} pages")
    documents = heldout_documents(heldout, crawl_texts)
    heldout_bytes = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents).encode("utf-8")
    _write_atomic(out / "heldout.jsonl", heldout_bytes)
    files["heldout.jsonl"] = hashlib.sha256(heldout_bytes).hexdigest()
    kinds = Counter(p.label["kind"] + (f" ({p.label['copy']} copy)" if "copy" in p.label else "") for p in pages)
    manifest = {
        "config_key": config.key(),
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items() if k not in ("out_dir", "debs_dir")},
        "sources": [
            deb_version(d) for d in fetch_debs(config.english_packages + config.translated_packages, config.debs_dir)
        ],
        "pages": len(pages),
        "pages_by_kind": dict(sorted(kinds.items())),
        "heldout_documents": len(documents),
        "files": files,
    }
    _write_atomic(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest
