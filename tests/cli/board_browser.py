#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The flow board in headless Chromium (driven by tests/cli/board.sh): the page
# loads without console errors and draws the graph; an order placed moves a count
# within 5 s; with payments stopped an order shows as stuck; clicking it shows its
# causal tree; a screenshot is saved.
"""usage: board_browser.py URL CHOREO PAYMENTS_PID_FILE SCREENSHOT"""
import json
import os
import signal
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def order(oid):
    return json.dumps({"order_id": oid, "customer_id": "c-1",
                       "items": [{"sku": "s-1", "qty": 1, "unit_price_cents": 250}],
                       "total_cents": 250, "currency": "EUR"})


def until(what, fn, seconds):
    """fn() until it returns a true value; fails the test after seconds."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page changes under us: try again
            last = e
        time.sleep(0.1)
    raise AssertionError("%s: not within %s s (last: %r)" % (what, seconds, last))


def main(url, choreo, payments_pid, shot):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1600,1100"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        run(d, url, choreo, payments_pid, shot)
    finally:
        d.quit()


def node_count(d, step, cls):
    return int(d.find_element(
        By.CSS_SELECTOR, 'g.node[data-step="%s"] .%s' % (step, cls)).text)


def run(d, url, choreo, payments_pid, shot):
    d.get(url)
    until("the graph", lambda: len(d.find_elements(By.CSS_SELECTOR, "g.node")) >= 10, 10)
    until("the first push", lambda: d.find_element(By.ID, "conn").text == "live", 10)
    for step in ("order.placed", "inventory.reserved", "payment.authorized",
                 "order.completed"):
        d.find_element(By.CSS_SELECTOR, 'g.node[data-step="%s"]' % step)
    assert len(d.find_elements(By.CSS_SELECTOR, "g.edge")) >= 10
    print("ok   board: the page draws the choreography's graph")

    before = node_count(d, "order.placed", "events")
    t0 = time.monotonic()  # the 5 s include producing the order
    subprocess.run([choreo, "produce", "order.placed", "--data", order("b-1")], check=True,
                   stdout=subprocess.DEVNULL)
    until("order.placed count to move",
          lambda: node_count(d, "order.placed", "events") > before, 5 - (time.monotonic() - t0))
    print("ok   board: an order placed moved the count in %.1f s" % (time.monotonic() - t0))
    until("b-1 to complete", lambda: node_count(d, "order.completed", "inflight") >= 1, 60)

    with open(payments_pid) as f:
        os.kill(int(f.read()), signal.SIGTERM)
    subprocess.run([choreo, "produce", "order.placed", "--data", order("b-2")], check=True,
                   stdout=subprocess.DEVNULL)
    row = until("b-2 in the stuck list", lambda: d.find_element(
        By.CSS_SELECTOR, '#stuck tr.flow[data-order="b-2"]'), 40)
    text = row.text
    assert "inventory.reserved" in text and "payments" in text, text
    until("the group's status", lambda: "the service is not running" in d.find_element(
        By.CSS_SELECTOR, '#stuck tr.flow[data-order="b-2"]').text, 20)
    assert "stuck" in d.find_element(By.CSS_SELECTOR,
                                     'g.node[data-step="inventory.reserved"]').get_attribute("class")
    print("ok   board: with payments stopped, b-2 is stuck at inventory.reserved on payments")

    d.find_element(By.CSS_SELECTOR, '#stuck tr.flow[data-order="b-2"]').click()
    tree = until("the causal tree", lambda: "waiting for" in d.find_element(By.ID, "tree").text
                 and d.find_element(By.ID, "tree").text, 30)
    assert "order.placed" in tree and "inventory.reserved" in tree, tree
    assert "waiting for payment.authorized|payment.declined from payments" in tree, tree
    assert "the service is not running; start it" in tree, tree
    nested = d.find_elements(By.CSS_SELECTOR, "#tree ul ul li")
    assert any("inventory.reserved" in li.text for li in nested), tree
    print("ok   board: clicking b-2 shows its causal tree and the missing step")

    d.save_screenshot(shot)
    errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
    print("ok   board: no console errors; screenshot in %s" % shot)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
