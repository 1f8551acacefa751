"""Issue 15 in a real browser, on real processes: `paxos up --detach --web` starts a local cluster
and, as the supervisor's child, the page's server; Debian's headless Chromium (driven by Selenium
through Debian's chromedriver) opens the printed URL with its token and must see every actor's
card and the leader marked, with arrows between the leader and every acceptor counting the
frames a second on each link. A click on kill -9 on the leader's card: the card goes down,
another proposer leads within a bounded time, and the old leader comes back with a new pid (the
supervisor restarts it). Pause an acceptor by click: its card says paused and the gauge counts
one acceptor fewer; resume it. A put and a get through the box. Cut the link between the leader
and an acceptor (the cluster runs in test mode, for the harness's fault layer): no frames cross
it, the others carry on; a click on the cut line heals it. Without the token, or from
another origin, the server refuses. `paxos down` leaves no web server behind.

Screenshots go to the test's tmp_path and, if PAXOS_SCREENSHOTS names a directory, there too
(outside git). The browser and chromedriver are stopped by the test, the cluster by `down`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runtime.control import pid_alive
from runtime.harness.local import LocalCluster, free_ports

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
RESTART_DELAY_S = 1.5  # long enough that the page shows a killed actor down before it is back
STEP_S = 15.0  # the bound on each thing the page must show


@contextmanager
def web_cluster_up(tmp_path: Path, extra: str = "", step: bool = False) -> Iterator[tuple[LocalCluster, str]]:
    """`paxos up --detach --web` in test mode, with `extra` config (`step`: `up --step`, not in
    test mode); (the cluster, the page's URL); `down` after. The fixture below, and other browser
    tests with a config of their own."""
    port = free_ports(1)[0]
    # Test mode: the harness's fault layer, for the page's cut and heal.
    testing = "" if step else (f"[testing]\nenabled = true\n\n"
                               f"[supervisor]\nrestart_delay_s = {RESTART_DELAY_S}\n")
    c = LocalCluster(tmp_path / "cluster", extra=f"[web]\nport = {port}\n\n" + testing + extra)
    try:
        proc = c.paxos("up", *(["--step"] if step else []), "--detach", "--web", "--wait-s", "30", timeout_s=60)
        c._remember_pids()
        web = c.data_dir / "run" / "web.json"
        if web.exists():
            c.seen_pids.add(json.loads(web.read_text())["pid"])  # `down` kills it by pid if need be
        assert proc.returncode == 0, proc.stderr
        m = re.search(r"^page: (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64})$", proc.stdout, re.M)
        assert m, proc.stdout
        yield c, m[1]
    finally:
        c.down()


@pytest.fixture
def web_cluster(tmp_path: Path) -> Iterator[tuple[LocalCluster, str]]:
    with web_cluster_up(tmp_path) as got:
        yield got


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100", f"--user-data-dir={tmp_path / 'chromium'}", "--no-first-run",
                "--disable-background-networking", "--disable-extensions"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:
        pytest.skip(f"headless chromium does not start here: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()  # the browser and chromedriver


def until(what: str, cond: Callable[[], Any], timeout_s: float = STEP_S) -> Any:
    """Poll the page until `cond` holds (a stale element, mid-update, is just not yet)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except StaleElementReferenceException:
            last = None
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"the page did not show {what} within {timeout_s:g}s (last: {last!r})")


def cards(driver: Any) -> dict[str, dict[str, str]]:
    """Every card on the page: its state, leader flag, pid and text, by actor name."""
    out = {}
    for el in driver.find_elements(By.CSS_SELECTOR, "article.card"):
        out[el.get_attribute("data-name")] = {"state": el.get_attribute("data-state"),
                                             "leader": el.get_attribute("data-leader"),
                                             "pid": el.get_attribute("data-pid"),
                                             "row": el.find_element(By.XPATH, "../..").get_attribute("data-role"),
                                             "restarts": el.find_element(By.CSS_SELECTOR, ".restarts").text}
    return out


def leader_of(driver: Any) -> str | None:
    leaders = [n for n, c in cards(driver).items() if c["leader"] == "true"]
    return leaders[0] if len(leaders) == 1 else None


def arrow(driver: Any, sender: str | None, peer: str) -> float:
    """The frames a second the arrow from `sender` to `peer` says (0: no arrow)."""
    for el in driver.find_elements(By.CSS_SELECTOR, f"#wires path.link[data-from='{sender}'][data-to='{peer}']"):
        return float(el.get_attribute("data-per-s") or 0)
    return 0.0


def click(driver: Any, actor: str, action: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#card-{actor} button[data-action={action}]").click()


def shoot(driver: Any, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    extra = os.environ.get("PAXOS_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(extra) / f"{name}.png"))


def http(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_page_watches_and_breaks_a_real_cluster(web_cluster: tuple[LocalCluster, str], browser: Any,
                                                    tmp_path: Path) -> None:
    c, url = web_cluster
    base, token = url.split("/?token=")
    assert http(f"{base}/") == 401 and http(f"{base}/events") == 401
    assert http(f"{base}/?token={'0' * 64}") == 401
    assert http(f"{base}/api/state", {"Authorization": f"Bearer {token}", "Origin": "http://evil.example"}) == 403

    browser.get(url)
    names = set(c.config.actors)
    until("every actor's card, up, and one leader",
          lambda: set(cards(browser)) == names and all(v["state"] == "up" for v in cards(browser).values())
          and leader_of(browser))
    rows = {n: v["row"] for n, v in cards(browser).items()}
    assert rows == {n: c.config.actor(n).role for n in names}  # proposers, acceptors, learners rows
    assert "3 of 3 acceptors up" in browser.find_element(By.ID, "gauge").text
    # Arrows: the leader's heartbeats to every acceptor, counted per link, and their answers.
    lead = leader_of(browser)
    until("arrows from the leader to every acceptor and back",
          lambda: {a for a in ("a1", "a2", "a3") if arrow(browser, lead, a) > 0 and arrow(browser, a, lead) > 0}
          == {"a1", "a2", "a3"})
    shoot(browser, tmp_path, "web-1-up")

    # kill -9 the leader by click: down, a new leader, and the old one back with a new pid.
    old = leader_of(browser)
    assert old is not None
    old_pid = cards(browser)[old]["pid"]
    click(browser, old, "kill")
    until(f"{old} down", lambda: cards(browser)[old]["state"] == "down")
    shoot(browser, tmp_path, "web-2-leader-killed")
    new = until("another leader", lambda: (lead := leader_of(browser)) not in (None, old) and lead)
    assert c.config.actor(new).role == "proposer"
    until(f"{old} restarted", lambda: cards(browser)[old]["state"] == "up"
          and cards(browser)[old]["pid"] not in ("", old_pid) and cards(browser)[old]["restarts"] == "1")
    assert f"{new} (ballot" in browser.find_element(By.ID, "leader").text

    # Pause an acceptor and resume it: the gauge counts it out, then in.
    click(browser, "a1", "pause")
    until("a1 paused", lambda: cards(browser)["a1"]["state"] == "paused"
          and "2 of 3 acceptors up" in browser.find_element(By.ID, "gauge").text)
    shoot(browser, tmp_path, "web-3-acceptor-paused")
    assert c.actor("a1")["state"] == "paused"  # what `paxos status` says too
    click(browser, "a1", "resume")
    until("a1 up again", lambda: cards(browser)["a1"]["state"] == "up"
          and "3 of 3 acceptors up" in browser.find_element(By.ID, "gauge").text)

    # A put and a get through the box.
    browser.find_element(By.ID, "kv-key").send_keys("greeting")
    browser.find_element(By.ID, "kv-value").send_keys("hello from the page")
    browser.find_element(By.ID, "kv-put").click()
    result = browser.find_element(By.ID, "kv-result")
    until("the put done", lambda: result.text == "put greeting: ok")
    browser.find_element(By.ID, "kv-value").clear()
    browser.find_element(By.ID, "kv-get").click()
    until("the value got back", lambda: result.text == "greeting = hello from the page")
    assert c.paxos("get", "greeting").stdout.strip() == "hello from the page"
    shoot(browser, tmp_path, "web-4-put-get")

    # Cut the link between the leader and a3 (both ways) and heal it by a click on the cut line.
    lead = leader_of(browser)
    Select(browser.find_element(By.ID, "link-a")).select_by_value(str(lead))
    Select(browser.find_element(By.ID, "link-b")).select_by_value("a3")
    browser.find_element(By.ID, "link-cut").click()
    p, q = sorted([str(lead), "a3"])
    cut = f"#wires line.cut[data-from='{p}'][data-to='{q}']"
    until(f"{lead} and a3 cut, and no frames between them", lambda: browser.find_elements(By.CSS_SELECTOR, cut)
          and arrow(browser, lead, "a3") == 0 and arrow(browser, "a3", lead) == 0)
    assert arrow(browser, lead, "a2") > 0  # the other links carry on
    shoot(browser, tmp_path, "web-5-link-cut")
    # The wires are redrawn with every view: an element found may be replaced before the click lands.
    hit = cut.replace("line.cut", "line.cut-hit")  # the line's wide, invisible click target
    until("a click on the cut line", lambda: browser.find_element(By.CSS_SELECTOR, hit).click() or True)
    until(f"{lead} and a3 healed", lambda: not browser.find_elements(By.CSS_SELECTOR, cut)
          and arrow(browser, lead, "a3") > 0 and arrow(browser, "a3", lead) > 0)
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]

    # `paxos down` stops the web server with the cluster.
    web_pid = json.loads((c.data_dir / "run" / "web.json").read_text())["pid"]
    assert c.paxos("down").returncode == 0
    until("the web server gone", lambda: not pid_alive(web_pid), timeout_s=5)  # and its port closed:
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/?token={token}", timeout=2)
