"""Drives a jack node's qBittorrent-compatible API with a real third-party
qBittorrent client library (qbittorrent-api, installed into target/py by
`make test`), as Radarr/Sonarr would: login, add a stub file (twice) and a
Torznab link, watch it download, complete, and delete. Prints one JSON
object of what it saw for tests/qbit.rs to check; exits non-zero (with the
reason) when the library itself refuses something.

Usage: qbit_client.py HOST PORT USER PASSWORD STUB_FILE LINK"""
import hashlib, json, sys, time

import qbittorrentapi

host, port, user, password, stub_file, link = sys.argv[1:7]
seen = {}
c = qbittorrentapi.Client(host=host, port=int(port), username=user, password=password,
                          RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True,
                          REQUESTS_ARGS={"timeout": 10})
try:
    qbittorrentapi.Client(host=host, port=int(port), username=user, password="wrong").auth_log_in()
    seen["bad_login"] = "accepted"
except qbittorrentapi.LoginFailed:
    seen["bad_login"] = "LoginFailed"
c.auth_log_in()
seen["version"] = c.app_version()
seen["webapi"] = c.app_web_api_version()
prefs = c.app_preferences()
seen["prefs"] = {k: prefs[k] for k in ("save_path", "queueing_enabled", "dht", "max_ratio_enabled",
                                      "max_ratio", "max_seeding_time_enabled", "max_seeding_time",
                                      "max_ratio_act")}
c.torrents_create_category(name="radarr")
seen["categories"] = sorted(c.torrents_categories().keys())
stub = open(stub_file, "rb").read()
seen["add_file"] = c.torrents_add(torrent_files=stub, category="radarr")
seen["add_file_again"] = c.torrents_add(torrent_files={"again.torrent": stub}, category="radarr")
seen["add_link"] = c.torrents_add(urls=link, category="radarr")
try:
    c.torrents_add(urls="magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567")
    seen["add_magnet"] = "accepted"
except qbittorrentapi.UnsupportedMediaType415Error:
    seen["add_magnet"] = 415

def info():
    return [dict(t) for t in c.torrents_info(category="radarr")]

deadline = time.monotonic() + 60
seen["downloading"] = None
while time.monotonic() < deadline:
    ts = info()
    for t in ts:
        if t["state"] == "downloading" and 0 < t["progress"] < 1 and t["dlspeed"] > 0:
            seen["downloading"] = t
    if len(ts) == 2 and all(t["state"] == "pausedUP" for t in ts):
        break
    time.sleep(0.1)
done = info()
for t in done:
    try:
        t["sha1"] = hashlib.sha1(open(t["content_path"], "rb").read()).hexdigest()
    except OSError as e:
        t["sha1"] = str(e)
seen["done"] = done
seen["other_category"] = [t["hash"] for t in c.torrents_info(category="sonarr")]
if done:
    h = done[0]["hash"]
    seen["by_hash"] = [t["hash"] for t in c.torrents_info(torrent_hashes=[h])]
    seen["properties"] = dict(c.torrents_properties(torrent_hash=h))
    seen["files"] = [dict(f) for f in c.torrents_files(torrent_hash=h)]
    c.torrents_set_share_limits(ratio_limit=-1, seeding_time_limit=-1, torrent_hashes=h)
    c.torrents_top_priority(torrent_hashes=h)
    c.torrents_set_force_start(enable=True, torrent_hashes=h)
    c.torrents_add_tags(tags="x", torrent_hashes=h)
    c.torrents_pause(torrent_hashes=h)
    c.torrents_resume(torrent_hashes=h)
    try:
        c.torrents_properties(torrent_hash="0" * 40)
        seen["unknown_properties"] = "found"
    except qbittorrentapi.NotFound404Error:
        seen["unknown_properties"] = 404
    keep, drop = sorted(done, key=lambda t: t["name"])
    c.torrents_delete(delete_files=False, torrent_hashes=keep["hash"])
    c.torrents_delete(delete_files=True, torrent_hashes=drop["hash"])
    seen["deleted"] = {"kept_files": keep["content_path"], "deleted_files": drop["content_path"]}
    seen["after_delete"] = info()
c.auth_log_out()
print(json.dumps(seen))
