"""Which requests in a browser's network log are a page's (tests/ui.rs).

A browser makes requests for itself: its new-tab page
(`chrome-untrusted://new-tab-page/...`, which Chromium 148 asks for at
start-up), `chrome://`, `chrome-extension://` and `devtools://` pages,
`about:` documents, `data:` and `blob:` URLs. None of them leave the machine
and none is the page's doing, so none counts. Every http(s) request is the
page's, and must go to one of the nodes' origins: a request to any other
http(s) origin fails the test.

Run alone (`python3 browser_requests.py`), it checks itself against a table
and exits non-zero on a wrong answer; it needs no browser.
"""

from urllib.parse import urlsplit

WEB = ("http", "https")


def origin(url):
    """`scheme://host:port` of an http(s) URL (the default port spelt out)."""
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return "%s://%s:%d" % (u.scheme, (u.hostname or "").lower(), port)


def outside(urls, nodes):
    """The http(s) URLs of `urls` whose origin is not one of `nodes`'; the
    browser's requests for itself (any other scheme) are left out."""
    allowed = {origin(n) for n in nodes}
    return [u for u in urls
            if urlsplit(u).scheme.lower() in WEB and origin(u) not in allowed]


def _self_test():
    node, big = "http://127.0.0.1:4001", "http://127.0.0.1:4002"
    own = [
        "chrome-untrusted://new-tab-page/one-google-bar?paramsencoded=",
        "chrome-untrusted://new-tab-page/custom_background_image?url=x",
        "chrome://new-tab-page/",
        "chrome://resources/js/x.js",
        "chrome-extension://abcdef/manifest.json",
        "devtools://devtools/bundled/inspector.html",
        "about:blank",
        "data:,",
        "data:image/png;base64,AAAA",
        "blob:http://127.0.0.1:4001/5d1c2e7a-0000-4000-8000-000000000000",
    ]
    page = [node + "/ui/", node + "/ui/state", big + "/ui/api/v1/downloads",
            "HTTP://127.0.0.1:4001/ui/session"]
    foreign = [
        "https://www.google.com/complete/search?q=x",
        "http://127.0.0.1:4003/ui/",
        "http://localhost:4001/ui/",
        "https://127.0.0.1:4001/ui/",
        "http://example.com/x.js",
    ]
    got = outside(own + page + foreign, [node, big])
    if got != foreign:
        raise SystemExit("outside() answered %r, not %r" % (got, foreign))
    print("ok: %d requests sorted" % len(own + page + foreign))


if __name__ == "__main__":
    _self_test()
