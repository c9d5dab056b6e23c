"""The compare page's URL carries each tab's settings: changing one rewrites the address bar in place
(no navigation, the tab not rendered again), and a reload or a copied link restores it."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_hessian_view import wait_for
from tests.browser.test_journeys import post_checkpoint, save_checkpoint
from tests.browser.test_plotly_build import assert_plotly_loaded_once, record_plotly_requests
from tests.browser.test_robustness_view import SMALL

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PLANE = {"mode": "2d", "steps": 5, "max_samples": 128}


@pytest.fixture(scope="module")
def pair(server, tmp_path_factory):
    """A dense checkpoint and its pruned child, each with a robustness result and a 2D landscape."""
    tmp = tmp_path_factory.mktemp("pair")
    ds = httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    dataset = ds.json()["id"]
    dense = post_checkpoint(server, save_checkpoint(tmp / "d.pt", seed=5), name="dense").json()["id"]
    resp = post_checkpoint(
        server, save_checkpoint(tmp / "c.pt", seed=5, zero_fraction=0.6), name="child", parent_id=str(dense)
    )
    assert resp.status_code == 201, resp.text
    ids = [dense, resp.json()["id"]]
    jobs = []
    for analysis, params in (("robustness", SMALL), ("landscape", PLANE)):
        body = {"analysis": analysis, "checkpoint_ids": ids, "dataset_id": dataset, "params": params}
        made = httpx.post(f"{server}/api/jobs", json=body, timeout=30)
        assert made.status_code == 202, made.text
        jobs += made.json()
    for job in jobs:
        assert wait_for(server, job["id"])["status"] == "succeeded"
    return ids, dataset


def choose(page, dropdown_id: str, option: str) -> None:
    page.click(f"#{dropdown_id}")
    page.get_by_role("option", name=option, exact=True).click()


def tab(page, label: str) -> None:
    page.locator("#compare-tab").get_by_text(label, exact=True).click()


def mark(page, selector: str) -> None:
    """Tag the page and an element of the tab: a navigation, a reload or a re-render drops the tag."""
    page.evaluate("s => { window.psMark = 1; document.querySelector(s).dataset.psMark = '1'; }", selector)


def still_marked(page, selector: str) -> bool:
    script = "s => window.psMark === 1 && document.querySelector(s).dataset.psMark === '1'"
    return page.evaluate(script, selector)


def test_robustness_settings_go_into_the_url_and_survive_a_reload(server, page, pair):
    ids, dataset = pair
    page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}&dataset={dataset}&tab=robustness")
    expect(page.locator("#robustness-summary .ag-row")).to_have_count(2)
    expect(page.locator("#fig-robustness-angle")).to_contain_text("class 0")
    expect(page.locator("#robustness-lists")).to_contain_text("Most fragile")
    assert "severity" not in page.url and "condition" not in page.url  # drawing a tab sets nothing
    mark(page, "#robustness-summary")

    # When the heatmap's severity, checkpoint A, the condition and the open sample change
    choose(page, "robustness-severity", "severity 3")
    page.wait_for_url(re.compile(r"[?&]severity=3(&|$)"))
    choose(page, "robustness-a", f"child (#{ids[1]})")
    page.wait_for_url(re.compile(rf"[?&]a={ids[1]}(&|$)"))
    choose(page, "robustness-condition", "contrast/3")
    page.wait_for_url(re.compile(r"[?&]condition=contrast/3(&|$)"))
    expect(page.locator("#robustness-lists")).to_contain_text("then contrast/3")
    page.fill("#robustness-index", "17")
    page.keyboard.press("Enter")
    expect(page.locator("#robustness-detail")).to_contain_text("Sample #17")
    page.wait_for_url(re.compile(r"[?&]sample=17(&|$)"))

    # Then the address bar changed in place: same page, the tab not rendered again
    assert still_marked(page, "#robustness-summary")
    assert f"ids={ids[0]},{ids[1]}" in page.url and "tab=robustness" in page.url

    # And a reload restores every control
    page.reload()
    expect(page.locator("#robustness-severity")).to_contain_text("severity 3")
    expect(page.locator("#robustness-a")).to_contain_text(f"child (#{ids[1]})")
    expect(page.locator("#robustness-condition")).to_contain_text("contrast/3")
    expect(page.locator("#robustness-index")).to_have_value("17")
    expect(page.locator("#robustness-detail")).to_contain_text("Sample #17")
    expect(page.locator("#robustness-sample-table")).to_contain_text("contrast/3")

    # And switching to another tab and back keeps them
    tab(page, "Landscape")
    page.wait_for_url(re.compile(r"tab=landscape.*severity=3"))
    expect(page.locator("#landscape-summary")).to_contain_text("dense")
    tab(page, "Robustness")
    page.wait_for_url(re.compile(r"tab=robustness"))
    expect(page.locator("#robustness-severity")).to_contain_text("severity 3")
    expect(page.locator("#robustness-condition")).to_contain_text("contrast/3")


def test_landscape_and_overview_settings_survive_a_reload(server, page, pair):
    ids, dataset = pair
    page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}&dataset={dataset}&tab=landscape")
    expect(page.locator("#fig-landscape-contours g.contour")).to_have_count(2)
    expect(page.locator("#landscape-summary .ag-row")).to_have_count(2)  # the grid loads on its own
    assert "log" not in page.url and "surface" not in page.url
    mark(page, "#landscape-summary")

    # When the log switch goes on and the child is drawn in 3D
    page.locator("#landscape-log input").check()
    page.wait_for_url(re.compile(r"[?&]log=1(&|$)"))
    expect(page.locator("#fig-landscape-contours")).to_contain_text("log₁₀ loss")
    choose(page, "landscape-surface", f"child (#{ids[1]})")
    page.wait_for_url(re.compile(rf"[?&]surface={ids[1]}(&|$)"))
    assert still_marked(page, "#landscape-summary")

    # Then a reload draws the same
    page.reload()
    expect(page.locator("#landscape-log input")).to_be_checked()
    expect(page.locator("#landscape-surface")).to_contain_text(f"child (#{ids[1]})")
    expect(page.locator("#fig-landscape-contours")).to_contain_text("log₁₀ loss")

    # And the overview's difference mode is kept the same way, beside the landscape's settings
    tab(page, "Overview")
    page.wait_for_url(re.compile(r"tab=overview.*log=1"))
    expect(page.locator("#overview-grid")).to_contain_text("child")
    page.get_by_text("difference to the parent").click()
    page.wait_for_url(re.compile(r"[?&]mode=difference(&|$)"))
    page.reload()
    expect(page.get_by_label("difference to the parent (child − dense)")).to_be_checked()
    expect(page.locator("#fig-overview-sparsity .gtitle")).to_contain_text("Difference to the parent")
    assert re.search(rf"log=1&surface={ids[1]}&mode=difference", page.url)


def test_figures_out_of_view_are_drawn_later_and_plotly_loads_once(server, browser, pair):
    ids, dataset = pair
    context = browser.new_context(viewport={"width": 1280, "height": 500})
    page = context.new_page()
    requests = record_plotly_requests(page)
    try:
        page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}&dataset={dataset}&tab=robustness")
        expect(page.locator("#fig-robustness-heatmap .ytick")).to_have_count(2)  # in view: drawn
        # figures far below a 500 px window were first drawn as empty boxes, and all get drawn
        page.wait_for_function("window.psDeferred && window.psDeferred() === 0", timeout=30_000)
        assert page.evaluate("window.psDeferred(true)") >= 2
        drawn = page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')]"
            ".map(gd => [gd.closest('[id]').id, gd.data.length, gd.dataset.psDeferred || null])"
        )
        assert len(drawn) >= 8 and all(n > 0 and waiting is None for _id, n, waiting in drawn), drawn
        # plotly.js was started early, once: dcc.Graph waited for that copy rather than adding its own
        assert_plotly_loaded_once(requests)
        assert page.evaluate("typeof window.Plotly.react") == "function"
        # a figure drawn later still answers its controls: the angle panels follow checkpoint A
        page.locator("#fig-robustness-angle").scroll_into_view_if_needed()
        choose(page, "robustness-a", f"child (#{ids[1]})")
        expect(page.locator("#fig-robustness-angle .gtitle")).to_contain_text(f"child (#{ids[1]})")
    finally:
        context.close()
