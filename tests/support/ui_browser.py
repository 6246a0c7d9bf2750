"""Drives jack's status page in a real headless Chromium (tests/ui.rs).

Argument: one JSON object (base and big node URLs, keys, the stubs to drop
and where, the file to move away and back, a profile folder). Every wait is
bounded; the last stdout line is a JSON report. Exits non-zero on the first
failed check, saying which.
"""

import json
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_requests import outside

A = json.loads(sys.argv[1])
BASE, BIG = A["base"], A["big"]
STEP_LIMIT = 30.0
report = {}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait(what, f, limit=STEP_LIMIT, every=0.05):
    end = time.monotonic() + limit
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1200,900",
              "--user-data-dir=" + A["profile"]]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


d = browser()
d.set_page_load_timeout(STEP_LIMIT)
d.set_script_timeout(STEP_LIMIT)
console, requests = [], []


def drain(allowed=()):
    """Collects the console and network logs since the last call; a
    console error fails unless it names one of `allowed`."""
    for e in d.get_log("browser"):
        console.append(e)
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed):
            raise AssertionError("console error: " + e["message"])
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            requests.append(m["params"]["request"]["url"])


def rows():
    return d.execute_script(
        "return [...document.querySelectorAll('.dl')].map(r => ({id: r.dataset.id,"
        " status: r.dataset.status, title: r.querySelector('.title').textContent,"
        " value: r.querySelector('progress').value}))")


def row(part):
    return next((r for r in rows() if part in r["title"]), None)


def login(key):
    field = wait("the key field", lambda: d.find_element(By.ID, "key").is_displayed()
                 and d.find_element(By.ID, "key"))
    field.clear()
    field.send_keys(key)
    field.send_keys(Keys.ENTER)  # the keyboard submits the form


AXE = open(A["axe"]).read()


def axe(what):
    """Runs axe-core on the page as it is now: no serious or critical
    finding (the script is injected through the driver, which the page's
    policy does not govern)."""
    if not d.execute_script("return !!window.axe"):
        d.execute_script(AXE)
    started = time.monotonic()
    found = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v =>"
        " ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map(n =>"
        " n.target.join(' ') + ': ' + n.failureSummary)}))), e => done([{id: 'error',"
        " impact: 'critical', help: String(e), nodes: []}]))")
    report.setdefault("axe_ms", {})[what] = round((time.monotonic() - started) * 1000)
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    check(not bad, "axe on " + what + ":\n" + json.dumps(bad, indent=1))
    report.setdefault("axe_minor", {})[what] = sorted(v["id"] for v in found)


def live_text():
    """What the page's live regions hold (a screen reader announces each
    change)."""
    return d.execute_script(
        "return [...document.querySelectorAll('[aria-live]:not([aria-live=off]),"
        " [role=status], [role=alert], [role=log]')].map(e => e.textContent)")


def no_alert():
    try:
        d.switch_to.alert
        raise AssertionError("an alert is open: a script ran")
    except NoAlertPresentException:
        pass


try:
    # 1. Login: a wrong key and a friend's key are refused, the owner's works.
    d.get(BASE + "/ui/")
    for bad in ["wrong-key", A["peer_key"]]:
        login(bad)
        wait("the refusal", lambda: d.find_element(By.ID, "loginerr").text == "Wrong key.")
        check(not d.find_element(By.ID, "downloads").is_displayed(), "downloads shown to " + bad)
        d.find_element(By.ID, "loginerr")  # still on the login form
    drain(allowed=["/ui/login - Failed to load resource: the server responded with a status of 401"])
    axe("the login form with its error")
    login(A["key"])
    wait("the downloads", lambda: d.find_element(By.ID, "downloads").is_displayed())
    d.execute_script("window.__noReload = 1")
    check(all(c["name"] != "jack_ui" or c["httpOnly"] for c in d.get_cookies()), "cookie not HttpOnly")
    check(d.execute_script("return document.cookie") == "", "the session cookie is readable by scripts")

    # 2. The hostile title is text: shown as those characters, nothing ran.
    hostile = wait("the hostile row", lambda: row("<img"))
    check(hostile["title"] == A["hostile"], "title shown as " + repr(hostile["title"]))
    check(d.execute_script("return document.querySelectorAll('img, .dl script').length") == 0,
          "markup from a title reached the document")
    no_alert()

    # 2b. A paused download is a state of its own, not an error: its own
    # label and colour, no error line, Resume offered (Pause not), and
    # Resume takes it up again.
    paused = wait("the paused row", lambda: row("Film.1.2024"))
    cid = paused["id"]
    check(paused["status"] == "paused", "paused row shows " + repr(paused["status"]))

    def sel(part):
        return '.dl[data-id="%s"] %s' % (cid, part)
    state = d.find_element(By.CSS_SELECTOR, sel(".state"))
    check(state.text == "paused", "paused label: " + repr(state.text))
    failed_state = d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .state' % hostile["id"])
    colour = state.value_of_css_property("background-color")
    check(colour != failed_state.value_of_css_property("background-color"),
          "paused styled like failed: " + colour)
    check(not d.find_element(By.CSS_SELECTOR, sel(".err")).is_displayed(),
          "a paused row shows an error line")
    check(not d.find_element(By.CSS_SELECTOR, sel(".pause")).is_displayed(),
          "a paused row offers Pause")
    check(d.find_element(By.CSS_SELECTOR, sel(".resume")).text == "Resume",
          "a paused row's button: " + d.find_element(By.CSS_SELECTOR, sel(".resume")).text)
    d.find_element(By.CSS_SELECTOR, sel(".resume")).click()
    wait("the paused row to be taken up again",
         lambda: (row("Film.1.2024") or {}).get("status") not in (None, "paused"))

    # 3. A download appears, its bar moves, it completes: no reload.
    os.rename(A["retry_file"], A["retry_away"])
    for name in sorted(os.listdir(A["stubs"]), reverse=True):  # Slow first
        os.rename(os.path.join(A["stubs"], name), os.path.join(A["watch"], name))
    wait("the slow download", lambda: row("Slow"))
    # Paused with its button while it runs, then resumed with the other.
    wait("the slow download to run", lambda: (row("Slow") or {}).get("status") == "downloading")
    # axe on a page with downloads in every state, the history of one open
    # and the peers listed.
    done = row("Done.Film")
    d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .title' % done["id"]).click()
    wait("the completed row's events", lambda: d.find_elements(
        By.CSS_SELECTOR, '.dl[data-id="%s"] ol.events li' % done["id"]))
    states = {r["status"] for r in rows()}
    check({"downloading", "paused", "failed", "completed"} <= states, "states: " + repr(states))
    check(d.find_elements(By.CSS_SELECTOR, "#peerrows td"), "no peer row")
    # Where the bytes came from and what of them is proven: the completed
    # one's pieces, the failed one's source that sent a bad piece.
    def shown(r, part):
        return d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] %s' % (r["id"], part)).text
    check(shown(done, ".pieces") == "pieces: 128 of 128 verified, 128 received",
          "pieces: " + repr(shown(done, ".pieces")))
    check(shown(hostile, ".srcs") == "sources: bob (1 bad piece)",
          "sources: " + repr(shown(hostile, ".srcs")))
    axe("the downloads in every state")
    sid = row("Slow")["id"]
    d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .pause' % sid).click()
    wait("the slow download to pause", lambda: row("Slow")["status"] == "paused")
    d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .resume' % sid).click()
    wait("the slow download to resume", lambda: row("Slow")["status"] != "paused")
    seen = set()

    def moving_then_done():
        r = row("Slow")
        if r and 0 < r["value"] < 1:
            seen.add(round(r["value"], 3))
        return r and r["status"] == "completed"
    wait("the slow download to complete", moving_then_done, limit=60)
    check(len(seen) >= 2, "the bar did not move: " + repr(sorted(seen)))
    check(row("Slow")["value"] == 1, "completed but the bar is not full")
    report["bar_values_seen"] = len(seen)

    # 4. The failed download is retried with its button and completes.
    wait("the retry film to fail", lambda: (row("Retry") or {}).get("status") == "failed")
    # Its stub, set aside as .failed, is listed with why and a Retry button.
    aside = wait("the set-aside stub", lambda: d.find_element(By.ID, "aside").is_displayed()
                 and "Retry.Film" in d.find_element(By.ID, "asiderows").text
                 and d.find_element(By.ID, "asiderows").text)
    check(d.find_elements(By.CSS_SELECTOR, "#asiderows button"), "no Retry for the stub: " + aside)
    axe("the stubs set aside")
    os.rename(A["retry_away"], A["retry_file"])
    rid = row("Retry")["id"]
    retry = d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .resume' % rid)
    check(retry.text == "Retry", "a failed row's button: " + retry.text)
    retry.click()
    wait("the retried download to complete", lambda: row("Retry")["status"] == "completed")

    # 5. A row opens with the keyboard to its events, newest first, in words.
    sid = row("Slow")["id"]
    title = d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .title' % sid)
    title.send_keys(Keys.ENTER)
    events = wait("the events", lambda: [e.text for e in d.find_elements(
        By.CSS_SELECTOR, '.dl[data-id="%s"] ol.events li' % sid)])
    check("Completed" in events[0], "newest event is not first: " + repr(events))
    check(title.get_attribute("aria-expanded") == "true", "aria-expanded not set")

    # 5b. Times are relative and local, the exact time on hover, refreshed
    # as they age; byte offsets in the history are sizes, the count on hover.
    did = row("Done.Film")["id"]
    ev = '.dl[data-id="%s"] ol.events' % did

    def times():
        return d.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' time')].map(t =>"
            " ({text: t.textContent, dt: t.getAttribute('datetime'), title: t.title,"
            " local: new Date(t.getAttribute('datetime')).toLocaleString()}))", ev)
    first = times()
    check(first, "no times in the history")
    for t in first:
        check(t["title"] == t["local"], "exact local time on hover: " + repr(t))
        check(t["text"].endswith(" ago") or t["text"] == "just now", "relative: " + repr(t))
    wait("the times to age", lambda: times()[0]["text"] != first[0]["text"], limit=10)
    size = d.execute_script(
        "const e = document.querySelector(arguments[0] + ' data');"
        "return e && {text: e.textContent, value: e.value, title: e.title,"
        " line: e.closest('li').textContent}", ev)
    check(size and size["text"] == "1.0 GiB" and size["value"] == "1073741824"
          and size["title"].replace(",", "") == "1073741824 bytes"
          and "Resumed: at 1.0 GiB" in size["line"], "byte offset: " + repr(size))
    details = {
        "at byte 1073741824": "at 1.0 GiB",
        "from byte 0: the peer's file changed": "from 0 B: the peer's file changed",
        "2147483648 bytes, 8814592 fetched in this attempt": "2.0 GiB, 8.4 MiB fetched in this attempt",
        "copying: 50% (1073741824 of 2147483648 bytes)": "copying: 50% (1.0 GiB of 2.0 GiB)",
        "the peer's file changed: 100 → 2048 bytes (etag)": "the peer's file changed: 100 B → 2.0 KiB (etag)",
        ".part had 4096 bytes, 2048 durable: truncated to 2048": ".part had 4.0 KiB, 2.0 KiB durable: truncated to 2.0 KiB",
        ".part has 4096 bytes but 2048 were recorded (data lost): resume from 4096":
            ".part has 4.0 KiB but 2.0 KiB were recorded (data lost): resume from 4.0 KiB",
        "body ended at byte 5 of 10": "body ended at 5 B of 10 B",
        "in 60000 ms after peer answered HTTP 503": "in 60000 ms after peer answered HTTP 503",
    }
    shown = d.execute_script(
        "return arguments[0].map(t => sized(t).map(n => n.textContent ?? n).join(''))",
        list(details))
    check(shown == list(details.values()), "sizes in details: " + repr(shown))
    cases = d.execute_script(
        "const n = Date.now(); return [relative(n - 120000, n), relative(n + 6000, n),"
        " relative(n - 5400, n), relative(n - 3 * 3600e3, n), relative(n - 2 * 86400e3, n),"
        " relative(n - 300, n), relative(n + 90e3, n)]")
    check(cases == ["2 min ago", "in 6 s", "5 s ago", "3 h ago", "2 days ago", "just now",
                    "in 1 min"], "relative times: " + repr(cases))
    # A download waiting to try again says when, in words, counting down.
    retry_at = d.execute_script(
        "const r = makeRow(-1); updateRow(r, {id: -1, title: 'x', status: 'retrying',"
        " peer: 'alice', progress: 0, done_bytes: 0, expected_bytes: 1, attempts: 1,"
        " restarts: 0, error: 'peer answered 503', next_try_at: Date.now() + 6400});"
        " const t = r.root.querySelector('.next time');"
        " return t && {text: t.closest('.next').textContent, dt: t.getAttribute('datetime'),"
        " title: t.title}")
    check(retry_at and retry_at["text"] in ("next try in 6 s", "next try in 7 s")
          and retry_at["dt"] and retry_at["title"], "next try: " + repr(retry_at))

    # 6. Delete asks first; dismissing keeps the row, accepting removes it.
    hid = hostile["id"]
    d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .delete' % hid).click()
    d.switch_to.alert.dismiss()
    time.sleep(1.5)
    check(row("<img") is not None, "deleted without confirmation")
    d.find_element(By.CSS_SELECTOR, '.dl[data-id="%s"] .delete' % hid).click()
    d.switch_to.alert.accept()
    wait("the deleted row to go", lambda: row("<img") is None)

    # 7. Peers, library, graph.
    wait("the peer to be asked", lambda: "answered" in d.find_element(By.ID, "peerrows").text)
    peers = d.find_element(By.ID, "peerrows").text
    check("alice" in peers and "0.1.0" in peers and "key" not in peers, "peers: " + peers)
    # The latest contact, either way, with its time: relative, exact on hover.
    contact = d.find_elements(By.CSS_SELECTOR, "#peerrows time")
    check(contact and contact[0].get_attribute("title") and "ago" in contact[0].text,
          "peer contact time: " + peers)
    check(d.find_elements(By.CSS_SELECTOR, "#svg svg polyline.down"), "no throughput line")
    # Speed limits from the page: a cap applied and shown, a bad one refused
    # with why, the alternative limits turned on and off; then none again.
    def limit_form(up, field="limup"):
        box = d.find_element(By.ID, field)
        box.clear()
        box.send_keys(up)
        d.find_element(By.CSS_SELECTOR, "#limform button[type=submit]").click()

    def limits_api():
        return d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/ui/api/v1/limits', {cache: 'no-store'}).then(r => r.json())"
            ".then(done, e => done({error: String(e)}))")

    def limit_posts():
        drain()
        return [u.split("/ui/api/v1/limits?")[1] for u in requests if "/ui/api/v1/limits?" in u]
    # jack.toml's upload rate is 100000 B/s, shown rounded (98 KiB/s): an
    # Apply with nothing edited sends nothing, and changing only the
    # download rate sends only it; the upload keeps its exact bytes.
    wait("the configured upload rate shown", lambda: d.find_element(By.ID, "limup").get_attribute("value") == "98")
    d.find_element(By.CSS_SELECTOR, "#limform button[type=submit]").click()
    time.sleep(1)  # what an Apply would have sent has arrived by now
    lim = limits_api()
    check(lim["normal"]["upload"] == 100000 and not lim["changed_at_run_time"],
          "an Apply with nothing edited changed the limits: " + json.dumps(lim))
    check(not limit_posts(), "an Apply with nothing edited was sent")
    check("Nothing to apply" in d.find_element(By.ID, "limerr").text, "no word on an empty Apply")
    limit_form("4096", "limdown")
    wait("the download cap in force", lambda: "downloading at most 4.0 MiB/s" in d.find_element(By.ID, "limnow").text)
    lim = limits_api()
    check(lim["normal"] == {"upload": 100000, "download": 4194304}
          and lim["alt_rates"] == {"upload": 0, "download": 0},
          "a download change moved other rates: " + json.dumps(lim))
    check(limit_posts() == ["download_rate=4194304"], "sent: " + repr(limit_posts()))
    limit_form("0", "limdown")
    wait("no download cap", lambda: "downloading at most no limit" in d.find_element(By.ID, "limnow").text)
    limit_form("2048")
    wait("the upload cap in force", lambda: "serving friends at most 2.0 MiB/s" in d.find_element(By.ID, "limnow").text)
    limit_form("10")
    wait("a cap below 64 KiB/s refused", lambda: d.find_element(By.ID, "limerr").text)
    drain(allowed=["/ui/api/v1/limits?upload_rate=10240"])
    check("2.0 MiB/s" in d.find_element(By.ID, "limnow").text, "a refused cap changed the limits")
    d.find_element(By.ID, "limtoggle").click()
    wait("the alternative limits on", lambda: "alternative limits on" in d.find_element(By.ID, "limalt").text)
    d.find_element(By.ID, "limtoggle").click()
    wait("the alternative limits off", lambda: not d.find_element(By.ID, "limalt").text)
    limit_form("0")
    wait("no upload cap", lambda: "serving friends at most no limit" in d.find_element(By.ID, "limnow").text)
    check(d.execute_script("return window.__noReload") == 1, "the page was reloaded")
    # The free space of the download folders, no warning above the reserve.
    disks = wait("the free space", lambda: d.find_element(By.ID, "disks").text)
    check("free of" in disks and "incomplete" in disks, "disks: " + disks)
    check(not [w for w in d.find_elements(By.CSS_SELECTOR, "#disks .warn") if w.is_displayed()],
          "a warning: " + disks)
    # Nothing changes: the live regions stay as they are (a screen reader
    # is not told the time every second).
    before = live_text()
    time.sleep(2.5)
    check(live_text() == before, "live regions change by themselves: %r %r" % (before, live_text()))

    # 8. A phone (375 x 812): one column, the page never scrolls sideways;
    # a table wider than its place scrolls within a container reached by
    # the keyboard; every peer's cells can be read.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
    time.sleep(0.5)
    xs = d.execute_script("return ['peers','library','downloads'].map(i => "
                          "document.getElementById(i).getBoundingClientRect().left)")
    check(len(set(xs)) == 1, "not one column under 600 px: " + repr(xs))
    width = d.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    check(width[0] <= width[1], "the page scrolls sideways on a phone: %r" % width)
    axe("the page on a phone")
    tables = d.execute_script(
        "return [...document.querySelectorAll('table')].filter(t => t.offsetParent).map(t => {"
        " const box = t.parentElement; return {id: t.id, wide: t.scrollWidth > box.clientWidth,"
        " scrolls: getComputedStyle(box).overflowX, tab: box.tabIndex, role: box.getAttribute('role'),"
        " label: box.getAttribute('aria-label') || box.getAttribute('aria-labelledby')}})")
    for t in tables:
        if t["wide"]:
            check(t["scrolls"] in ("auto", "scroll") and t["tab"] == 0 and t["role"] and t["label"],
                  "a table wider than its place cannot be reached: " + repr(t))
    cells = d.execute_script(
        "return [...document.querySelectorAll('#peerrows td')].map(c => {"
        " const r = c.getBoundingClientRect(); return {text: c.textContent, left: r.left,"
        " right: r.right, width: r.width, fits: c.scrollWidth <= c.clientWidth + 1}})")
    check(cells, "no peer cells on a phone")
    for c in cells:
        check(c["left"] >= 0 and c["right"] <= 375 and c["fits"] and (c["width"] >= 80 or not c["text"]),
              "a peer cell unreadable on a phone: " + repr(c))
    if os.environ.get("JACK_UI_SHOTS"):
        d.execute_script("document.getElementById('peers').scrollIntoView()")
        d.save_screenshot(os.path.join(os.environ["JACK_UI_SHOTS"], "phone.png"))
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    drain()

    # 9. 1,000 rows: time from navigation to the list drawn.
    d.get(BIG + "/ui/")
    login(A["key"])
    wait("the big list", lambda: len(rows()) == 1000)
    # Its min_free_bytes is above any disk's free space: a warning.
    warn = wait("the disk warning", lambda: d.execute_script(
        "const w = document.querySelector('#disks .warn'); return w && !w.hidden && w.textContent"))
    check("min_free_bytes" in warn and "free" in warn, "warning: " + warn)
    # A watch folder that cannot be read (replaced by a file): the list
    # stands, and the stubs' section says why in plain words.
    shutil.rmtree(A["big_watch"], ignore_errors=True)
    with open(A["big_watch"], "w") as f:
        f.write("not a folder")
    note = wait("the set-aside note", lambda: d.find_element(By.ID, "asidenote").is_displayed()
                and d.find_element(By.ID, "asidenote").text)
    check("cannot read the watch folder" in note and "os error" not in note, "note: " + note)
    check(len(rows()) == 1000, "the list went with the watch folder")
    axe("the stubs set aside cannot be shown")
    d.get(BIG + "/ui/")
    # The page marks the frame after it first drew the list (jack-list).
    t = wait("the big list after a reload", lambda: d.execute_script(
        "const m = performance.getEntriesByName('jack-list')[0];"
        "return document.querySelectorAll('.dl').length === 1000 && m && m.startTime"))
    report["first_paint_ms"] = round(t, 1)
    drain()

    # 10. Logout ends the session.
    d.find_element(By.ID, "logout").click()
    wait("the login form", lambda: d.find_element(By.ID, "key").is_displayed())
    d.get(BIG + "/ui/")
    wait("the login form after a reload", lambda: d.find_element(By.ID, "key").is_displayed())
    drain()

    # Nothing but the nodes was asked over http(s); the browser's requests
    # for itself (chrome-untrusted://, chrome://, data:, ...) are not the
    # page's (browser_requests.py).
    ours = [u for u in requests if u.startswith((BASE + "/", BIG + "/"))]
    check(len(ours) > 10, "the network log is empty")
    away = outside(requests, [BASE, BIG])
    check(not away, "requests outside the node: " + repr(away))
    report["requests"] = len(requests)
    report["browser_own_requests"] = len(
        [u for u in requests if not u.startswith(("http:", "https:"))])
    report["console_entries"] = len(console)
finally:
    d.quit()

print(json.dumps(report))
