"""Compare page interactivity with N checkpoints and every analysis loaded (DESIGN §8: interactive in 2 s).

Usage: nice -n 10 .venv/bin/python -m bench.compare_page [--checkpoints 20] [--repeats 3] [--data-dir DIR]
           [--tabs evaluate hessian landscape robustness overview] [--profile] [--returning]
           [--plotlyjs own|full]

Seeds a data dir (a temp dir, or ``--data-dir``, reused when already seeded) through the real API and worker
(:mod:`bench._seed`), then opens ``/compare?ids=..&dataset=..&tab=..`` in Debian's Chromium (Playwright) for
each tab, a fresh browser context each time (a first visit; ``--returning``: one context for every load,
after each tab was loaded twice in it, so its HTTP and compiled-code caches are warm), and measures in
the page:

- load (interactive): ms from navigation start until the tab's figures are drawn (as many
  ``.js-plotly-plot`` as a warm-up load showed, its marker figure among them), no ``[data-dash-is-loading]``
  element, no graph drawing or resizing (``.dash-graph--pending``) and no callback request in flight, held
  for ``HOLD_MS`` (the time reported is when that state began). Figures more than a screen from the view
  are drawn later (``assets/plotly_setup.js``): at load they are empty boxes of their size ("later" in
  the breakdown), so this is when what is in view is drawn and the page answers input;
- all drawn: the same, and no figure waiting to be drawn (``window.psDeferred()``);
- interact: from a tab-specific interaction (a switch of the tab, or another tab for evaluate and hessian)
  until its callback's output is drawn (the figure replaced, or the other tab ready);
- longtask: the sum of Long Tasks (PerformanceObserver, buffered) before the load time.

``--plotlyjs full`` serves plotly.py's full plotly.min.js (the server is given a folder without the
dashboard's plotly.js build), for an A/B against the build (``own``, the default: used when ``make plotlyjs``
has built it); the warm-up prints which plotly.js files the page fetched.

Also prints where the load time goes: the HTML document, the Dash callbacks' server time (Resource Timing:
responseStart - requestStart of each ``_dash-update-component``), their largest response, and the time from
the last callback response to ready (client-side rendering). Last line:
``compare_page_interactive_seconds_max: <s>`` (the max over tabs of the median load time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench._seed import seed
from bench._server import running_server
from tests.browser.conftest import CHROMIUM_ARGS
from tests.conftest import CHROMIUM

TABS = ("evaluate", "hessian", "landscape", "robustness", "overview")
SEED_FILE = "bench_seed.json"
HOLD_MS = 500
TIMEOUT_MS = 60_000
# A figure each tab always draws: its presence says the content is the tab's, not the previous one's.
MARKER = {
    "evaluate": "fig-accuracy",
    "hessian": "fig-eigenvalues",
    "landscape": "fig-landscape-contours",
    "robustness": "fig-robustness-heatmap",
    "overview": "fig-overview-sparsity",
}
LABEL = {"evaluate": "Evaluate", "hessian": "Hessian", "landscape": "Landscape"}
# Per tab: (what it does, JS that does it in the page, figure replaced or tab whose content must appear)
INTERACTION = {
    "evaluate": ("click tab Hessian", "tab:Hessian", ("tab", "hessian")),
    "hessian": ("click tab Evaluate", "tab:Evaluate", ("tab", "evaluate")),
    "landscape": (
        "tick log10 loss",
        "document.querySelector('#landscape-log input[type=checkbox]').click()",
        ("figure", "fig-landscape-contours"),
    ),
    "robustness": (
        "severity dropdown",
        "dropdown:#robustness-severity",
        ("figure", "fig-robustness-heatmap"),
    ),
    "overview": (
        "radio difference",
        "document.querySelectorAll('#overview-mode input[type=radio]')[1].click()",
        ("figure", "fig-overview-sparsity"),
    ),
}

# Installed before any page script: counts callback requests in flight and records Long Tasks.
INIT_SCRIPT = """
window.__ps = {inflight: 0, long: [], plots: []};
(() => {
  let plotly;  // wrap Plotly.newPlot/react when dcc.Graph loads Plotly: [figure id, call, start, end]
  Object.defineProperty(window, 'Plotly', {configurable: true, get: () => plotly, set: v => {
    plotly = v;
    if (!v || typeof v.newPlot !== 'function') return;  // the preload's promise of plotly.js
    for (const name of ['newPlot', 'react']) {
      const orig = v[name];
      v[name] = function (gd, ...rest) {
        const t = performance.now();
        const id = (gd && gd.closest && (gd.closest('[id]') || {}).id) || '?';
        const done = () => window.__ps.plots.push([id, name, t, performance.now()]);
        const r = orig.call(this, gd, ...rest);
        Promise.resolve(r).then(done, done);
        return r;
      };
    }
  }});
  const orig = window.fetch;
  window.fetch = function (...args) {
    const url = String((args[0] && args[0].url) || args[0]);
    const cb = url.includes('_dash-update-component');
    if (cb) window.__ps.inflight++;
    const p = orig.apply(this, args);
    if (cb) p.then(r => r.clone().arrayBuffer()).catch(() => null).finally(() => window.__ps.inflight--);
    return p;
  };
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__ps.long.push([e.startTime, e.duration]);
  }).observe({type: 'longtask', buffered: true});
})();
"""

# Resolves with the time (performance.now()) at which `ready` became true and then stayed so for `hold` ms.
WAIT_JS = """
async ({expected, marker, tab, figure, hold, timeout, all, since}) => {
  const plotted = id => document.querySelector('#' + id + ' .js-plotly-plot');
  const ready = () => {
    if (window.__ps.inflight > 0 || document.querySelector('[data-dash-is-loading="true"]')) return false;
    if (document.querySelector('.dash-graph--pending')) return false;  // a graph being drawn or resized
    if (all && window.psDeferred && window.psDeferred() > 0) return false;  // figures still out of view
    if (tab && !location.search.includes('tab=' + tab)) return false;
    if (figure) { const gd = plotted(figure); return !!gd && gd.data !== window.__ps.before; }
    return document.querySelectorAll('.js-plotly-plot').length >= expected && !!plotted(marker);
  };
  const begun = performance.now();
  let first = null, fromStart = false, checks = 0;  // ready at the first check: it began at `since`
  return await new Promise((resolve, reject) => {
    const tick = () => {
      const now = performance.now();
      if (ready()) {
        if (first === null) { first = now; fromStart = checks === 0; }
        if (now - first >= hold) return resolve(fromStart && since !== null ? since : first);
      } else {
        first = null;
      }
      checks++;
      if (now - begun > timeout) return reject(new Error('not ready after ' + timeout + ' ms'));
      requestAnimationFrame(tick);
    };
    tick();
  });
}
"""

NETWORK_JS = r"""
(upTo) => {
  const nav = performance.getEntriesByType('navigation')[0];
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const axis = /^[xy]axis\d*$/;
  const cbs = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('_dash-update-component') && e.startTime < upTo);
  return {
    html: nav.responseEnd,
    boot: cbs.length ? Math.min(...cbs.map(e => e.startTime)) : 0,
    js_kb: performance.getEntriesByType('resource')  // scripts, and plotly.js's preload (a link)
      .filter(e => e.initiatorType === 'script' || (e.initiatorType === 'link' && e.name.includes('.js')))
      .reduce((s, e) => s + e.decodedBodySize, 0) / 1024,
    callbacks: cbs.length,
    server: cbs.reduce((s, e) => s + (e.responseStart - e.requestStart), 0),
    server_max: Math.max(0, ...cbs.map(e => e.responseStart - e.requestStart)),
    biggest_kb: Math.max(0, ...cbs.map(e => e.decodedBodySize)) / 1024,
    last_response: Math.max(0, ...cbs.map(e => e.responseEnd)),
    plots: plots.length,
    traces: plots.reduce((s, gd) => s + (gd.data || []).length, 0),
    axes: plots.reduce((s, gd) => s + Object.keys(gd._fullLayout || {}).filter(k => axis.test(k)).length, 0),
    longtask: window.__ps.long.filter(([s]) => s < upTo).reduce((t, [, d]) => t + d, 0),
    deferred: window.psDeferred ? window.psDeferred() : 0,
  };
}
"""

REMEMBER_JS = "id => { window.__ps.before = document.querySelector('#' + id + ' .js-plotly-plot').data; }"


def seeded(data_dir: Path, base: str, n_checkpoints: int) -> tuple[list[int], int]:
    path = data_dir / SEED_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        if len(saved["ids"]) == n_checkpoints:
            return saved["ids"], saved["dataset"]
    ids, dataset_id = seed(base, n_checkpoints)
    path.write_text(json.dumps({"ids": ids, "dataset": dataset_id}))
    return ids, dataset_id


def wait_ready(page, *, expected=0, marker=None, tab=None, figure=None, all=False, since=None) -> float:
    args = {"expected": expected, "marker": marker, "tab": tab, "figure": figure, "all": all, "since": since}
    return page.evaluate(WAIT_JS, {**args, "hold": HOLD_MS, "timeout": TIMEOUT_MS})


def act(page, how: str) -> None:
    """Do the interaction ``how``: ``tab:<label>``, ``dropdown:<selector>`` (pick another option) or JS."""
    if how.startswith("tab:"):
        page.locator("#compare-tab .tab", has_text=how[4:]).click()
    elif how.startswith("dropdown:"):
        box = page.locator(how[9:])
        box.click()
        page.get_by_role("option").filter(has_not_text="mean").first.click()
    else:
        page.evaluate(how)


def interact(page, tab: str, expected: dict[str, int]) -> float:
    """ms from the start of ``tab``'s interaction until its output is drawn."""
    _what, how, (kind, target) = INTERACTION[tab]
    if kind == "figure":
        page.evaluate(
            "id => { window.__ps.before = document.querySelector('#' + id + ' .js-plotly-plot').data }",
            target,
        )
    t0 = page.evaluate("performance.now()")
    act(page, how)
    if kind == "tab":
        done = wait_ready(page, expected=expected.get(target, 1), marker=MARKER[target], tab=target)
    else:
        done = wait_ready(page, figure=target)
    return done - t0


def new_context(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(INIT_SCRIPT)
    return context


def open_tab(
    browser, url: str, tab: str, expected: dict[str, int], *, measure_interaction: bool, shared=None
) -> dict:
    """One load of ``tab`` in a fresh browser context (a first visit: nothing cached), or in ``shared``
    (a returning visit: the browser's HTTP and compiled-code caches hold what earlier loads fetched)."""
    context = shared or new_context(browser)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url, wait_until="commit")
        load = wait_ready(page, expected=expected.get(tab, 1), marker=MARKER[tab])
        row = {"load": load, **page.evaluate(NETWORK_JS, load)}
        row["all"] = wait_ready(page, expected=expected.get(tab, 1), marker=MARKER[tab], all=True, since=load)
        if measure_interaction:
            row["interact"] = interact(page, tab, expected)
    finally:
        (page if shared else context).close()
    if errors:
        print(f"  {tab}: JavaScript errors: {errors[:3]}")
    return row


def _script(url: str) -> str:
    """A short name for a profiled function's script: its file name without query, or V8's label."""
    return url.rsplit("/", 1)[-1].split("?")[0] or "(native: layout, style, GC, parse)"


def self_times(profile: dict) -> dict[str, float]:
    """ms of main-thread self time per script in a V8 CPU profile (``Profiler.stop``), idle left out."""
    script = {n["id"]: _script(n["callFrame"]["url"]) for n in profile["nodes"]}
    labels = {n["id"]: n["callFrame"]["functionName"] for n in profile["nodes"]}
    out: dict[str, float] = {}
    for node, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        name = labels[node] if labels[node].startswith("(") else script[node]
        out[name] = out.get(name, 0.0) + delta / 1000
    out.pop("(idle)", None)
    return out


def profile_load(browser, base: str, url: str, tab: str, expected: dict[str, int]) -> None:
    """One load of ``tab`` under V8's sampling profiler: where the main thread's time went, by script."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.goto(f"{base}/api/health")  # same origin: the profiler then follows the page's renderer
    cdp = context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 500})
    cdp.send("Profiler.start")
    page.goto(url, wait_until="commit")
    load = wait_ready(page, expected=expected.get(tab, 1), marker=MARKER[tab])
    times = self_times(cdp.send("Profiler.stop")["profile"])
    plots = page.evaluate("upTo => window.__ps.plots.filter(p => p[2] < upTo)", load)
    context.close()
    top = sorted(times.items(), key=lambda kv: -kv[1])[:6]
    total = sum(times.values())
    parts = ", ".join(f"{name} {ms:.0f}" for name, ms in top)
    print(f"profile {tab}: load {load:.0f} ms (+{HOLD_MS} held), busy {total:.0f} ms: {parts}")
    slowest = sorted(plots, key=lambda p: p[2] - p[3])[:5]
    figures = ", ".join(f"{fid} {call} {end - start:.0f}" for fid, call, start, end in slowest)
    drawn = sum(end - start for *_, start, end in plots)
    print(f"  Plotly calls: {len(plots)}, {drawn:.0f} ms in all; slowest (ms, call to promise): {figures}")


# the plotly.js files a page fetched, and their size
PLOTLY_JS = r"""
() => performance.getEntriesByType('resource')
  .filter(e => /plotly\.min\.js$|\/_prunescope\/plotly\//.test(e.name.split('?')[0]))
  .map(e => e.name.split('?')[0].split('/').pop() + ' ' + Math.round(e.decodedBodySize / 1024) + ' KB')
  .join(', ')
"""


def warm_up(browser, urls: dict[str, str]) -> dict[str, int]:
    """One untimed load per tab (server caches, imports); the number of figures each tab settles on."""
    expected: dict[str, int] = {}
    for tab, url in urls.items():
        row = open_tab(browser, url, tab, {}, measure_interaction=False)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url, wait_until="networkidle")
        page.wait_for_timeout(2000)
        expected[tab] = page.locator(".js-plotly-plot").count()
        plotly = page.evaluate(PLOTLY_JS)
        context.close()
        first = f"first load {row['load'] / 1000:.2f} s"
        print(f"warm-up {tab}: {expected[tab]} figures, {first}, plotly.js {plotly}")
    return expected


# (column, width) of the breakdown table, and the row key each column shows
BREAKDOWN = [
    ("tab", 10),
    ("html", 5),
    ("js KB", 6),
    ("1st callback", 12),
    ("callbacks", 9),
    ("server sum", 10),
    ("server max", 10),
    ("biggest KB", 10),
    ("last resp", 9),
    ("render after", 12),
    ("figures", 7),
    ("later", 5),
    ("traces", 6),
    ("axes", 5),
]
KEYS = {
    "html": "html",
    "js KB": "js_kb",
    "1st callback": "boot",
    "callbacks": "callbacks",
    "server sum": "server",
    "server max": "server_max",
    "biggest KB": "biggest_kb",
    "last resp": "last_response",
    "render after": "render",
    "figures": "plots",
    "later": "deferred",
    "traces": "traces",
    "axes": "axes",
}


def stats(values: list[float]) -> str:
    return f"{statistics.median(values) / 1000:6.2f} {max(values) / 1000:6.2f}"


def report(rows: dict[str, list[dict]]) -> None:
    heads = ("load s med/max", "all drawn s", "interact s", "longtask s")
    print(f"\n{'tab':<11} " + " ".join(f"{h:>14}" for h in heads) + "  interaction")
    for tab, runs in rows.items():
        cols = [stats([r[k] for r in runs]) for k in ("load", "all", "interact", "longtask")]
        print(f"{tab:<11} {cols[0]:>14} {cols[1]:>14} {cols[2]:>14} {cols[3]:>14}  {INTERACTION[tab][0]}")
    print("\nwhere the load goes (medians; times in ms from navigation start):")
    print(" ".join(f"{h:<{w}}" if h == "tab" else f"{h:>{w}}" for h, w in BREAKDOWN))
    for tab, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        med["render"] = med["load"] - med["last_response"]
        print(" ".join(f"{tab:<{w}}" if h == "tab" else f"{med[KEYS[h]]:>{w}.0f}" for h, w in BREAKDOWN))
    worst = max(statistics.median(r["load"] for r in runs) for runs in rows.values())
    drawn = max(statistics.median(r["all"] for r in runs) for runs in rows.values())
    print(f"\ncompare_page_all_figures_drawn_seconds_max: {drawn / 1000:.2f}")
    print(f"compare_page_interactive_seconds_max: {worst / 1000:.2f}")


def measure(
    base: str, ids: list[int], dataset_id: int, tabs: list[str], repeats: int, profile: bool, returning: bool
) -> None:
    from playwright.sync_api import sync_playwright

    query = f"ids={','.join(map(str, ids))}&dataset={dataset_id}"
    urls = {tab: f"{base}/compare?{query}&tab={tab}" for tab in tabs}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        expected = warm_up(browser, urls)
        shared = new_context(browser) if returning else None
        if shared is not None:  # its caches see every tab twice first
            for tab in [*tabs, *tabs]:
                open_tab(browser, urls[tab], tab, expected, measure_interaction=False, shared=shared)
        rows = {tab: [] for tab in tabs}
        for i in range(repeats):
            for tab in tabs:
                row = open_tab(browser, urls[tab], tab, expected, measure_interaction=True, shared=shared)
                rows[tab].append(row)
                print(f"run {i + 1} {tab}: load {rows[tab][-1]['load'] / 1000:.2f} s")
        if profile:
            print()
            for tab in tabs:
                profile_load(browser, base, urls[tab], tab, expected)
        browser.close()
    report(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tabs", nargs="+", choices=TABS, default=list(TABS))
    parser.add_argument("--profile", action="store_true", help="also profile one load per tab (V8)")
    parser.add_argument(
        "--returning", action="store_true", help="load in one browser context: a returning visitor's caches"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (and reuse) the seeded data here")
    parser.add_argument(
        "--plotlyjs", choices=("own", "full"), default="own", help="the own build or plotly.min.js"
    )
    args = parser.parse_args()
    env = {"PRUNESCOPE_RATE_LIMIT_PER_MINUTE": "0", "PRUNESCOPE_DEVICE": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        if args.plotlyjs == "full":
            env["PRUNESCOPE_PLOTLYJS_DIR"] = str(Path(tmp) / "no-plotlyjs-build")
        with running_server(data_dir, env=env, workers=1) as (base, _proc):
            t0 = time.perf_counter()
            ids, dataset_id = seeded(data_dir, base, args.checkpoints)
            print(f"{len(ids)} checkpoints, dataset {dataset_id}, ready in {time.perf_counter() - t0:.0f} s")
            measure(base, ids, dataset_id, args.tabs, args.repeats, args.profile, args.returning)


if __name__ == "__main__":
    main()
