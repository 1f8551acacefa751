"""Issue 15's fault controls in a real browser, on real processes (runtime/web/faultctl.py): on a
cluster of `paxos up --detach --web` in test mode with small snapshots, headless Chromium arms the
crash point after-fsync-before-reply on an acceptor by click (its card says armed), a put through
the box makes it fire (the card goes down, says where it ended itself, exit 72, and comes back
restarted with a new pid); a delay and a drop rate set on a link by click are drawn as a dotted
line labelled "50 ms, 20% drop", written both ways in the fault rules, and a click on the line
heals it; a few puts later the cards show a learner's snapshot and compaction point and an
acceptor's; a learner added with `paxos members add` appears as a new card without a reload.

Reuses tests/integration/test_web_browser.py's cluster (web_cluster_up), browser and helpers;
every process is stopped by them (`paxos down`, then SIGKILL of anything left; the browser and
chromedriver by `quit`). Screenshots as there (PAXOS_SCREENSHOTS).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import crashpoints
from runtime.harness.local import LocalCluster, free_ports
from tests.integration.test_web_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    browser,
    cards,
    leader_of,
    shoot,
    until,
    web_cluster_up,
)

__all__ = ["browser"]  # a fixture, used by name
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SNAPSHOT_EVERY_SLOTS = 6  # a few puts make a snapshot, and the compactions after it
EXTRA = f"[snapshot]\nevery_slots = {SNAPSHOT_EVERY_SLOTS}\n\n[protocol]\nwindow_slots = 4\n"  # alpha 4: quick joins


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[tuple[LocalCluster, str]]:
    with web_cluster_up(tmp_path, EXTRA) as got:
        yield got


def card_attr(driver: Any, name: str, attr: str) -> str:
    return str(driver.find_element(By.ID, f"card-{name}").get_attribute(attr) or "")


def card_text(driver: Any, name: str, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"#card-{name} {selector}").text)


def put(url: str, key: str, value: str) -> None:
    """A put through the page's server (the box's request), for the snapshot's slots."""
    base, token = url.split("/?token=")
    req = urllib.request.Request(f"{base}/api/kv", data=json.dumps({"op": "put", "key": key, "value": value}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["ok"]


def test_crash_points_link_rules_snapshots_and_a_new_member_on_the_page(
        small_cluster: tuple[LocalCluster, str], browser: Any, tmp_path: Path) -> None:
    c, url = small_cluster
    browser.get(url)
    names = set(c.config.actors)
    until("every actor's card, up, and one leader",
          lambda: set(cards(browser)) == names and all(v["state"] == "up" for v in cards(browser).values())
          and leader_of(browser))

    # Arm after-fsync-before-reply on a1 by click: the card says so.
    point = crashpoints.AFTER_FSYNC
    learner_points = [o.get_attribute("value") for o in
                      browser.find_elements(By.CSS_SELECTOR, "#card-l1 .crash-point option")]
    assert point not in learner_points and crashpoints.TORN_WRITE in learner_points  # a learner has no such point
    old_pid = card_attr(browser, "a1", "data-pid")
    Select(browser.find_element(By.CSS_SELECTOR, "#card-a1 .crash-point")).select_by_value(point)
    browser.find_element(By.CSS_SELECTOR, "#card-a1 .crash-arm").click()
    until("a1 armed", lambda: card_attr(browser, "a1", "data-crash-armed") == point
          and card_text(browser, "a1", ".crash-note") == f"armed: ends itself at {point}")
    shoot(browser, tmp_path, "faultctl-1-armed")

    # A put makes it fire: a1 persists the accept, fsyncs, and ends itself before it answers.
    browser.find_element(By.ID, "kv-key").send_keys("crash")
    browser.find_element(By.ID, "kv-value").send_keys("fired")
    browser.find_element(By.ID, "kv-put").click()
    until("the put done", lambda: browser.find_element(By.ID, "kv-result").text == "put crash: ok")
    until("a1 down at its crash point", lambda: card_attr(browser, "a1", "data-state") == "down"
          and card_attr(browser, "a1", "data-crash-point") == point)
    assert f"ended itself at {point} (exit 72)" in card_text(browser, "a1", ".crash-note")
    shoot(browser, tmp_path, "faultctl-2-crashed")
    until("a1 restarted", lambda: card_attr(browser, "a1", "data-state") == "up"
          and card_attr(browser, "a1", "data-pid") not in ("", old_pid)
          and card_text(browser, "a1", ".restarts") == "1" and "restarted" in card_text(browser, "a1", ".crash-note"))
    assert c.actor("a1")["crash_point"] == point  # what `paxos status` says too

    # A delay and a drop rate on the link leader-a2, by click: drawn with its rule, then healed.
    lead = str(leader_of(browser))
    Select(browser.find_element(By.ID, "link-a")).select_by_value(lead)
    Select(browser.find_element(By.ID, "link-b")).select_by_value("a2")
    for field, value in (("rule-delay", "50"), ("rule-drop", "0.2")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "rule-set").click()
    p, q = sorted([lead, "a2"])
    line = f"#wires line.lossy[data-from='{p}'][data-to='{q}']"
    label = f"#wires text.lossy-label[data-from='{p}'][data-to='{q}']"
    until(f"{lead} ↔ a2 drawn delayed and lossy", lambda: browser.find_elements(By.CSS_SELECTOR, line)
          and browser.find_element(By.CSS_SELECTOR, label).text == "50 ms, 20% drop")
    rules = json.loads((c.data_dir / "run" / "faults.json").read_text())
    assert rules[lead]["a2"] == rules["a2"][lead] == {"delay_ms": 50, "drop": 0.2}
    shoot(browser, tmp_path, "faultctl-3-lossy-link")
    hit = line.replace("line.lossy", "line.lossy-hit")  # its wide, invisible click target
    until("a click on the lossy line", lambda: browser.find_element(By.CSS_SELECTOR, hit).click() or True)
    until(f"{lead} ↔ a2 healed", lambda: not browser.find_elements(By.CSS_SELECTOR, line))
    assert json.loads((c.data_dir / "run" / "faults.json").read_text()) == {}

    # A few puts: the learners snapshot and compact, the acceptors keep the snapshot and compact.
    for i in range(SNAPSHOT_EVERY_SLOTS + 2):
        put(url, f"k{i}", str(i))
    until("a learner's and an acceptor's snapshot and compaction point on their cards",
          lambda: card_attr(browser, "l1", "data-snapshot") and card_attr(browser, "l1", "data-compacted")
          and any(card_attr(browser, a, "data-snapshot") and card_attr(browser, a, "data-compacted")
                  for a in ("a1", "a2", "a3")))
    assert int(card_text(browser, "l1", ".snapshot")) >= SNAPSHOT_EVERY_SLOTS
    shoot(browser, tmp_path, "faultctl-4-snapshots")

    # `paxos members add learner l3`: a new card, no reload.
    proc = c.paxos("members", "add", "learner", "l3", "--endpoint", f"tcp://127.0.0.1:{free_ports(1)[0]}")
    assert proc.returncode == 0, proc.stderr
    # (Its "joining" badge lasts only until the slots before the change takes effect are
    # delivered, and the leader fills those with no-ops at once: the fast tests check the badge.)
    until("l3's card, up, in the learners' row, as a member like the others",
          lambda: cards(browser).get("l3", {}).get("state") == "up" and cards(browser)["l3"]["row"] == "learner"
          and card_attr(browser, "l3", "data-member") == "")
    shoot(browser, tmp_path, "faultctl-5-new-member")
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
