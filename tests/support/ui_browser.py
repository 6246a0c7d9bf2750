"""Drives jack's status page in a real headless Chromium (tests/ui.rs).

Argument: one JSON object (base and big node URLs, keys, the stubs to drop
and where, the file to move away and back, a profile folder). Every wait is
bounded; the last stdout line is a JSON report. Exits non-zero on the first
failed check, saying which.
"""

import json
import os
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
    wait("the peer to be asked", lambda: "yes" in d.find_element(By.ID, "peerrows").text)
    peers = d.find_element(By.ID, "peerrows").text
    check("alice" in peers and "0.1.0" in peers and "key" not in peers, "peers: " + peers)
    check(d.find_elements(By.CSS_SELECTOR, "#svg svg polyline.down"), "no throughput line")
    check(d.execute_script("return window.__noReload") == 1, "the page was reloaded")

    # 8. One column on a phone.
    d.set_window_size(390, 844)
    time.sleep(0.3)
    xs = d.execute_script("return ['peers','library','downloads'].map(i => "
                          "document.getElementById(i).getBoundingClientRect().left)")
    check(len(set(xs)) == 1, "not one column under 600 px: " + repr(xs))
    d.set_window_size(1200, 900)
    drain()

    # 9. 1,000 rows: time from navigation to the list drawn.
    d.get(BIG + "/ui/")
    login(A["key"])
    wait("the big list", lambda: len(rows()) == 1000)
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
