"""Web pages around real text: the site chrome, contact footers, thin pages and near-copies that a crawl is full of.

The text inside every page is real (see :mod:`.sources`). What is made up here is what web templates add around it
(navigation, breadcrumbs, cookie notices, share buttons, footers), contact details in the documentation ranges that
reach no one (``555-01xx`` numbers, ``192.0.2.0/24``-style addresses, ``.invalid`` domains), the pages a crawler
finds that hold almost nothing (404s, logins, redirects), and the small edits that make a near-duplicate.
"""

from __future__ import annotations

import html
import random
import re

SECTIONS = ("Home", "Docs", "Downloads", "Community", "Blog", "About", "Support", "News", "Events", "Contact")
FOOTER_LINKS = ("Privacy policy", "Terms of use", "Cookie settings", "Accessibility", "Sitemap", "RSS", "Careers")
COOKIE_NOTICES = (
    "We use cookies to improve your experience. By continuing to browse you agree to our use of cookies. Accept",
    "This site uses cookies for analytics and personalised content. Manage preferences | Accept all",
    "Cookies help us deliver our services. By using our services, you agree to our use of cookies. Learn more OK",
)
SHARE = "Share this: Facebook Twitter LinkedIn Email Print"
DOC_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737 documentation ranges
PHONE_FORMATS = ("({a}) 555-01{b:02d}", "{a}-555-01{b:02d}", "{a}.555.01{b:02d}", "+1 {a} 555 01{b:02d}")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def paragraphs_html(text: str) -> str:
    return "".join(f"<p>{esc(p)}</p>" for p in text.split("\n") if p.strip())


def contact_block(rng: random.Random, host: str) -> tuple[str, dict[str, int]]:
    """A footer with an e-mail address, a phone number and a server address; returns HTML and what it holds."""
    user = rng.choice(("info", "webmaster", "support", "docs", "office", "sales", "press"))
    phone = rng.choice(PHONE_FORMATS).format(a=rng.randint(201, 989), b=rng.randint(0, 99))
    ip = f"{rng.choice(DOC_NETS)}.{rng.randint(1, 254)}"
    block = (
        f"<div class='contact'><h4>Contact us</h4><p>Questions? Write to {user}@{host} or call {phone} "
        f"(Mon-Fri, 9am-5pm).</p><p>Served by mirror {ip}</p></div>"
    )
    return block, {"email": 1, "phone": 1, "ip": 1}


def chrome(rng: random.Random, host: str, title: str, body_html: str, extra_footer: str = "") -> bytes:
    """A page as a site serves it: head, menus, breadcrumbs, cookie notice, the content, share links, footer."""
    menu = " ".join(f"<li><a href='/{s.lower()}'>{s}</a></li>" for s in rng.sample(SECTIONS, rng.randint(5, 9)))
    footer = " | ".join(rng.sample(FOOTER_LINKS, rng.randint(3, 6)))
    crumbs = " &gt; ".join(["Home", *[esc(w.title()) for w in title.split()[:2]]])
    year = rng.randint(2009, 2024)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)} | {host}</title></head><body>"
        f"<header><div class='logo'>{host}</div><nav><ul>{menu}</ul></nav>"
        f"<form class='search'><input placeholder='Search'> Search</form></header>"
        f"<div class='cookies'>{rng.choice(COOKIE_NOTICES)}</div>"
        f"<div class='breadcrumbs'>{crumbs}</div><main><h1>{esc(title)}</h1>{body_html}</main>"
        f"<aside>{SHARE}</aside>{extra_footer}"
        f"<footer><p>{footer}</p><p>Copyright {year}-2025 {host}. All rights reserved.</p></footer></body></html>"
    ).encode()


def article_page(rng: random.Random, host: str, title: str, text: str, contact: bool) -> tuple[bytes, dict[str, int]]:
    """A news or encyclopedia article inside a site's chrome, optionally with a contact footer."""
    footer, pii = contact_block(rng, host) if contact else ("", {})
    return chrome(rng, host, title, paragraphs_html(text), footer), pii


def forum_thread(rng: random.Random, host: str, comments: list[str]) -> bytes:
    """A comment thread: user names, timestamps and reply links around real comments."""
    posts = "".join(
        f"<div class='post'><span class='user'>user{rng.randint(100, 99999)}</span> "
        f"<span class='when'>{rng.randint(1, 23)} hours ago</span><p>{esc(c)}</p>"
        f"<span class='actions'>Reply | Report | Like ({rng.randint(0, 40)})</span></div>"
        for c in comments
    )
    title = re.sub(r"\s+", " ", comments[0])[:60]
    return chrome(rng, host, f"Comments: {title}", f"<div class='thread'>{posts}</div>")


def mailing_list_page(rng: random.Random, list_name: str, subject: str, sender: str, date: str, body: str) -> bytes:
    """A message in a Pipermail-style list archive (the sender's address shown, as many archives do)."""
    nav = (
        "<ul><li>Previous message: [{0}] earlier thread</li><li>Next message: [{0}] later thread</li>"
        "<li><b>Messages sorted by:</b> [ date ] [ thread ] [ subject ] [ author ]</li></ul>"
    ).format(esc(list_name))
    return (
        f"<!DOCTYPE html><html><head><title>[{esc(list_name)}] {esc(subject)}</title></head><body>"
        f"<h1>[{esc(list_name)}] {esc(subject)}</h1><b>{esc(sender)}</b><br><i>{esc(date)}</i>"
        f"<p>{nav}<hr><pre>{esc(body)}</pre><hr>{nav}<a href='/mailman/listinfo'>More information about the "
        f"{esc(list_name)} mailing list</a></body></html>"
    ).encode()


THIN_PAGES = (
    ("404 Not Found", "The page you requested could not be found. It may have been moved or deleted. Go back home."),
    ("Sign in", "Username Password Remember me Forgot your password? Sign in Create an account"),
    ("Redirecting", "This page has moved. If you are not redirected automatically, follow this link."),
    ("Access denied", "You need to be logged in to view this content. Log in | Register"),
    ("Shopping cart", "Your cart is empty. Continue shopping. Subtotal: $0.00 Checkout"),
    ("Tag archive", "Posts tagged with this keyword: No posts found. Older posts Newer posts"),
    (
        "Subscribe",
        "Get our newsletter! Enter your email address Subscribe. We respect your privacy. Unsubscribe anytime.",
    ),
    ("Search results", "Your search did not match any documents. Suggestions: check your spelling. Try other words."),
    ("Under construction", "Coming soon! This site is under construction. Please check back later."),
)


def thin_page(rng: random.Random, host: str) -> bytes:
    """A page with next to no content of its own: error pages, logins, empty listings."""
    title, text = rng.choice(THIN_PAGES)
    return chrome(rng, host, title, f"<p>{text}</p>")


_NUMBER = re.compile(r"\b\d+(?:\.\d+)+\b")


def near_copy(rng: random.Random, page: bytes, host: str) -> bytes:
    """The same page as a mirror serves it: other chrome around it, version numbers and a few words changed."""
    text = page.decode("utf-8", errors="replace")
    text = _NUMBER.sub(lambda m: m.group(0) if rng.random() < 0.7 else f"{m.group(0)}.{rng.randint(1, 9)}", text)
    words = re.split(r"(\s+)", text)
    for _ in range(max(1, len(words) // 400)):
        i = rng.randrange(0, len(words), 2)
        if words[i].isalpha():
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i][::-1]
    mirror_note = f"<div class='mirror'>Mirrored from the original site by {host}. Last synchronised recently.</div>"
    return re.sub(r"<body([^>]*)>", lambda m: f"<body{m.group(1)}>{mirror_note}", "".join(words), count=1).encode()
