"""Linked highlighting and the overview grid in a real browser, on real evaluate results of a small family."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_hessian_view import wait_for
from tests.browser.test_journeys import post_checkpoint, save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_NAME = "<img src=x onerror=alert(1)>"
DIM = 0.15  # assets/highlight.js


def opacities(page, figure_id: str) -> list:
    """Each trace's opacity as drawn (unset: 1), read from the Plotly graph div's data."""
    return page.evaluate(
        "id => document.querySelector('#' + id + ' .js-plotly-plot').data"
        ".map(t => t.opacity === undefined ? 1 : t.opacity)",
        figure_id,
    )


def row_order(page) -> list[int]:
    """The grid's checkpoint ids in display order."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#overview-grid .ag-center-cols-container .ag-row'))
            .sort((a, b) => Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')))
            .map(r => Number(r.getAttribute('row-id')))"""
    )


def rerender(page, figure_id: str) -> None:
    """Render the tab's content again through the page's own callback (what its 2 s poll does)."""
    gd = f"document.querySelector('#{figure_id} .js-plotly-plot')"
    page.evaluate(f"() => {{ {gd}.data.psBefore = true; }}")
    page.evaluate("() => window.dash_clientside.set_props('compare-refresh', {data: Date.now()})")
    page.wait_for_function(f"() => {gd} && {gd}.data && !{gd}.data.psBefore")


@pytest.fixture(scope="module")
def family(server, tmp_path_factory):
    """A dense checkpoint and two pruned children (one with a hostile name), each with an evaluate result."""
    tmp = tmp_path_factory.mktemp("family")
    ds = httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    dense = post_checkpoint(server, save_checkpoint(tmp / "d.pt", seed=0), name="dense").json()["id"]
    ids = [dense]
    for seed, (name, zeros) in enumerate([(XSS_NAME, 0.5), ("sparse80", 0.8)], start=1):
        path = save_checkpoint(tmp / f"c{seed}.pt", seed=seed, zero_fraction=zeros)
        resp = post_checkpoint(server, path, name=name, parent_id=str(dense))
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    jobs = httpx.post(
        f"{server}/api/jobs",
        json={"analysis": "evaluate", "checkpoint_ids": ids, "dataset_id": ds.json()["id"]},
        timeout=30,
    )
    assert jobs.status_code == 202, jobs.text
    for job in jobs.json():
        assert wait_for(server, job["id"])["status"] == "succeeded"
    return ids, ds.json()["id"]


def test_hovering_a_checkpoint_in_one_figure_dims_the_others_in_another(server, page, family):
    ids, dataset = family
    page.goto(f"{server}/compare?ids={','.join(map(str, ids))}&tab=evaluate&dataset={dataset}")
    for rendering in ("first", "again"):  # figures the page renders again (as its poll does) stay linked
        expect(page.locator("#fig-per-class g.trace.scatter")).to_have_count(3)
        expect(page.locator("#fig-accuracy g.trace.bars")).to_have_count(3)
        assert opacities(page, "fig-per-class") == [1, 1, 1], rendering

        # When the mouse rests on the second checkpoint's accuracy bar
        box = page.locator("#fig-accuracy g.trace.bars").nth(1).locator("path").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

        # Then the other checkpoints' lines fade in the per-class figure, and come back when it leaves
        page.wait_for_function(
            "() => document.querySelector('#fig-per-class .js-plotly-plot').data[0].opacity < 1"
        )
        assert opacities(page, "fig-per-class") == [DIM, 1, DIM], rendering
        page.mouse.move(2, 2)
        page.wait_for_function(
            "() => document.querySelector('#fig-per-class .js-plotly-plot').data.every(t => t.opacity === 1)"
        )
        rerender(page, "fig-per-class")


def test_overview_grid_sorts_numerically_shows_names_as_text_and_switches_to_differences(
    server, page, family
):
    ids, dataset = family
    page.goto(f"{server}/compare?ids={','.join(map(str, ids))}&tab=overview&dataset={dataset}")
    grid = page.locator("#overview-grid")
    expect(grid.locator(".ag-row")).to_have_count(3 * 2)  # the pinned name column renders its own rows
    expect(grid).to_contain_text(XSS_NAME)  # the hostile name is text, not an element
    expect(grid.locator("img")).to_have_count(0)
    assert row_order(page) == ids

    # Sorting by sparsity: ascending on the first click, descending on the second
    column = grid.get_by_role("columnheader", name="sparsity")
    column.locator(".ag-header-cell-label").click()
    expect(column).to_have_attribute("aria-sort", "ascending")
    assert row_order(page) == ids  # 0% < 50% < 80%
    column.locator(".ag-header-cell-label").click()
    expect(column).to_have_attribute("aria-sort", "descending")
    assert row_order(page) == ids[::-1]

    # Hovering a child's row fades the other points of the figure
    grid.locator(f".ag-center-cols-container .ag-row[row-id='{ids[2]}']").hover()
    page.wait_for_function(
        "() => document.querySelector('#fig-overview-sparsity .js-plotly-plot').data"
        ".some(t => Array.isArray(t.selectedpoints))"
    )
    page.mouse.move(2, 2)

    # The difference mode: the metric columns and the figure show child − parent
    page.get_by_text("difference to the parent").click()
    expect(grid.get_by_role("columnheader", name="Δ clean accuracy")).to_be_visible()
    expect(page.locator("#fig-overview-sparsity .gtitle")).to_contain_text("Difference to the parent")
