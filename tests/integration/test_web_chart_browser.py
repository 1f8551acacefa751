"""The page's sequence chart, explain on click and plot (issue 15) in a real browser, on real
processes: `paxos up --detach --web` (test_web_browser.py's fixtures: a local cluster, Debian's
headless Chromium through chromedriver). Three puts through the box; the chart must show the
Accept and Accepted arrows of their slots and the slot chosen; a click on the last slot's
Accept row opens its explain: chosen, under the leader's ballot, every acceptor's vote and each
learner's delivery. A slot beyond the log and a bad one typed in the slot box are said as such.
The plot has points of commands a second and of slot latency. Paused, the chart holds still
while another put goes through; resumed, it shows it.

Screenshots as test_web_browser.py saves them (tmp_path, and PAXOS_SCREENSHOTS if set). The
browser and chromedriver are stopped by the fixture, the cluster by `down`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.harness.local import LocalCluster
from tests.integration import test_web_browser as page
from tests.integration.test_web_browser import cards, leader_of, shoot, until

# test_web_browser.py's fixtures, used here by name: a cluster up with its page, and the browser.
web_cluster = page.web_cluster
browser = page.browser

By = pytest.importorskip("selenium.webdriver.common.by", reason="selenium is not installed").By


def put(driver: Any, key: str, value: str) -> None:
    """A put through the page's box, waited for."""
    box = driver.find_element(By.ID, "kv-key")
    box.clear()
    box.send_keys(key)
    v = driver.find_element(By.ID, "kv-value")
    v.clear()
    v.send_keys(value)
    driver.find_element(By.ID, "kv-put").click()
    until(f"the put of {key}", lambda: driver.find_element(By.ID, "kv-result").text == f"put {key}: ok")


def rows(driver: Any) -> list[dict[str, str]]:
    """The chart's rows as the page drew them (kind, slot, label or mark text and style)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#chart-svg g.chart-row')].map((g) => ({kind: g.dataset.kind, "
        "slot: g.dataset.slot || '', label: g.dataset.label || '', text: g.dataset.text || '', "
        "style: g.dataset.style || ''}))")


def slots_assigned(driver: Any) -> set[int]:
    return {int(m[1]) for r in rows(driver) if (m := re.match(r"assign s=(\d+)", r["text"]))}


def slot_drawn(driver: Any, slot: int) -> bool:
    """Accepts to the acceptors, their Accepted back, and the slot chosen, all in the chart."""
    mine = [r for r in rows(driver) if r["slot"] == str(slot)]
    return (sum(r["label"].startswith("Accept b=") for r in mine) >= 3
            and sum(r["label"].startswith("Accepted b=") for r in mine) >= 2
            and any(r["style"] == "decide" for r in mine))


def explain_shown(driver: Any) -> dict[str, str]:
    out = driver.find_element(By.ID, "explain-out")
    return {"slot": out.get_attribute("data-slot") or "", "verdict": out.get_attribute("data-verdict") or "",
            "text": out.text}


def test_the_chart_explains_a_slot_on_click_and_plots(web_cluster: tuple[LocalCluster, str], browser: Any,
                                                      tmp_path: Path) -> None:
    c, url = web_cluster
    browser.get(url)
    until("every actor up, and a leader", lambda: len(cards(browser)) == len(c.config.actors)
          and all(v["state"] == "up" for v in cards(browser).values()) and leader_of(browser))
    # The chart and the plot are asked for only while on screen: a window tall enough for them and
    # the put box together.
    browser.set_window_size(1400, 1800)
    until("the chart on screen", lambda: browser.execute_script(
        "const r = document.getElementById('chart-frame').getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= window.innerHeight"))
    for i in range(3):
        put(browser, f"chart-{i}", f"value {i}")

    # The chart: the puts' slots with their Accepts, Accepteds and the decision.
    last = until("the puts' slots assigned in the chart", lambda: len(slots_assigned(browser)) >= 3
                 and max(slots_assigned(browser)))
    until(f"slot {last}'s Accept and Accepted arrows and its decision", lambda: slot_drawn(browser, last))
    note = browser.find_element(By.ID, "chart-note").text
    assert "rows" in note and browser.find_element(By.ID, "chart").get_attribute("data-follow") == "true", note
    browser.execute_script("document.getElementById('chart').scrollIntoView()")
    shoot(browser, tmp_path, "web-chart-1-slots")

    # A click on the slot's Accept row: its explain, chosen under the leader's ballot.
    ballot = until("the leader's ballot", lambda: re.search(r"\(ballot ([0-9.]+)\)",
                                                           browser.find_element(By.ID, "leader").text))[1]
    row = f"#chart-svg g.chart-row.arrow[data-slot='{last}'][data-label^='Accept b=']"
    browser.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", row)
    until("a click on the Accept row", lambda: browser.find_element(By.CSS_SELECTOR, row).click() or True)
    shown = until(f"slot {last} explained", lambda: (e := explain_shown(browser))["slot"] == str(last)
                  and e["verdict"] in ("chosen", "delivered") and e)
    chosen = browser.find_element(By.CSS_SELECTOR, "#explain-out p.chosen")
    assert chosen.get_attribute("data-ballot") == ballot, chosen.text
    assert "value 2" not in shown["text"]  # values are not shown, keys are
    assert "chart-2" in chosen.text, chosen.text
    names = {el.get_attribute("data-name")
             for el in browser.find_elements(By.CSS_SELECTOR, "#explain-out tr[data-name]")}
    assert names == set(c.config.actors) - {"p1", "p2"}, names
    assert f"slot {last}: chosen" in shown["text"] or f"slot {last}: delivered" in shown["text"]
    shoot(browser, tmp_path, "web-chart-2-explain")

    # Typed in the slot box: beyond the log, and not a slot at all.
    box = browser.find_element(By.ID, "explain-slot")
    for typed, verdict, says in (("99999", "beyond_log", "beyond the log"), ("-3", "error", "not '-3'")):
        box.clear()
        box.send_keys(typed)
        browser.find_element(By.ID, "explain-go").click()
        until(f"explain {typed} refused", lambda v=verdict, s=says: (e := explain_shown(browser))["verdict"] == v
              and s in e["text"])

    # The plot: commands a second, and the puts' slot latency.
    until("points on both plots", lambda: int(browser.find_element(By.ID, "plot-rate").get_attribute("data-points"))
          >= 2 and int(browser.find_element(By.ID, "plot-latency").get_attribute("data-points")) >= 1)
    assert "slot latency from the traces" in browser.find_element(By.ID, "plot-latency-source").text
    browser.execute_script("document.getElementById('plots').scrollIntoView()")
    shoot(browser, tmp_path, "web-chart-3-plot")

    # Paused, the chart holds still through another put; resumed, it shows it.
    browser.find_element(By.ID, "chart-pause").click()
    before = slots_assigned(browser)
    put(browser, "chart-paused", "later")
    time.sleep(1.0)  # several refreshes would have come by now (a negative: nothing to wait for)
    assert slots_assigned(browser) == before
    browser.find_element(By.ID, "chart-pause").click()
    browser.execute_script("const b = document.getElementById('chart-scroll'); b.scrollTop = b.scrollHeight")
    until("the paused put's slot, once resumed", lambda: max(slots_assigned(browser)) > max(before))
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"
                and "/api/explain/-3 " not in e.get("message", "")]  # the 400 asked for above
