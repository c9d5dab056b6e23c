/* How the dashboard's pages get plotly.js: started early, and drawing what can be seen first.

   1. Start plotly.js while a page's first callbacks are on the server.

   dcc.Graph loads plotly.js (4.8 MB; about a second of main-thread evaluation on a slow machine) only when
   its first graph mounts, which is after the callback that draws the figures has come back: the page then
   waits for the server and for plotly.js one after the other. The compare page and shared views fetch it
   (a preload, not run) as this script runs, and run it when their first callback request goes out: its
   evaluation then runs while the main thread would otherwise wait for responses.

   Until the script has run, `window.Plotly` is a promise of it: dcc.Graph waits on
   `Promise.resolve(window.Plotly || <its own loader>)`, so it waits for this script rather than adding a
   second copy. plotly.js replaces the promise with itself when it runs.

   Which plotly.js: the dashboard's own build when the page names it (`<meta name="prunescope-plotlyjs">`,
   dashboard/plotly_bundle.py: only the traces the figures draw, as ES modules, 1.3 MB, and 0.55 MB more
   for the 3D ones when a figure has one), imported; should that fail, or without one, plotly.py's
   plotly.min.js, as dcc.Graph has it.

   2. dcc.Graph also resizes every graph once right after drawing it (`Plotly.Plots.resize`), which redraws
   the whole figure even when its box has not changed: 20-60% of the first drawing again, after all the
   graphs are drawn. Once plotly.js has run, a resize of a graph whose box already has the drawn size
   returns at once; any other resize goes on as before.

   3. A figure that dcc.Graph would draw more than half a screen out of view is drawn as an empty box of
   its height first, and for real when it comes near the view or when the browser is idle (one figure
   per idle period), whichever comes first. A compare tab shows 4-9 figures, of which 2-3 fit in a
   window: the rest no longer hold up the ones in view. Until then `gd.dataset.psDeferred` is set;
   `window.psDeferred()` tells how many wait, `window.psDeferred(true)` how many waited in all. A new
   figure for a waiting graph replaces the one it waits with. */
(function () {
  "use strict";
  var started = false;
  // the compare page and shared views: started with the first callback (which draws the page's layout)
  var PLOT_PAGES = /\/(compare|s\/[^/]+)\/?$/;

  var AHEAD = 0.5; // screens beyond the view within which a figure is drawn at once
  var waiting = new Map(); // graph div -> [the arguments of its Plotly.react]
  var observer = null;
  var idleQueued = false;
  var deferredSoFar = 0;

  function offscreen(gd) {
    var box = (gd.parentElement || gd).getBoundingClientRect(); // dcc.Graph's box holds its min-height
    var margin = AHEAD * window.innerHeight;
    return box.height > 0 && (box.top > window.innerHeight + margin || box.bottom < -margin);
  }

  function drawWaiting(gd) {
    var args = waiting.get(gd);
    if (!args) return;
    waiting.delete(gd);
    if (observer) observer.unobserve(gd);
    delete gd.dataset.psDeferred;
    if (document.body.contains(gd)) window.Plotly.react.apply(window.Plotly, args);
  }

  function drawWhenIdle() {
    if (idleQueued || !waiting.size) return;
    idleQueued = true;
    var later = window.requestIdleCallback || function (f) { return setTimeout(f, 50); };
    later(function () {
      idleQueued = false;
      var next = waiting.keys().next();
      if (!next.done) drawWaiting(next.value);
      drawWhenIdle();
    });
  }

  function placeholder(figure) {
    var layout = (figure && figure.layout) || {};
    return {
      data: [],
      layout: {
        height: layout.height,
        width: layout.width,
        xaxis: { visible: false },
        yaxis: { visible: false },
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
      },
      config: figure && figure.config,
    };
  }

  function deferOffscreen(Plotly) {
    var react = Plotly && Plotly.react;
    if (typeof react !== "function" || !("IntersectionObserver" in window)) return;
    observer = new IntersectionObserver(
      function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) drawWaiting(entry.target);
        });
      },
      { rootMargin: AHEAD * 100 + "% 0px" }
    );
    Plotly.react = function (gd) {
      var args = Array.prototype.slice.call(arguments);
      if (!gd || typeof gd === "string" || args.length !== 2 || !args[1] || !args[1].data) {
        return react.apply(this, args); // not dcc.Graph's call (one figure object): as it was
      }
      if (waiting.has(gd)) {
        waiting.set(gd, args); // a newer figure for a graph still out of view
        return Promise.resolve(gd);
      }
      if (!gd._fullLayout && offscreen(gd)) {
        deferredSoFar += 1;
        waiting.set(gd, args); // first drawn far from the view: an empty box now, the figure later
        gd.dataset.psDeferred = "1";
        observer.observe(gd);
        drawWhenIdle();
        return react.call(this, gd, placeholder(args[1]));
      }
      return react.apply(this, args);
    };
    window.psDeferred = function (total) {
      return total ? deferredSoFar : waiting.size; // waiting now, or deferred since the page loaded
    };
  }

  function skipSameSizeResize(Plotly) {
    var resize = Plotly && Plotly.Plots && Plotly.Plots.resize;
    if (typeof resize !== "function") return;
    Plotly.Plots.resize = function (gd) {
      var div = typeof gd === "string" ? document.getElementById(gd) : gd;
      var full = div && div._fullLayout;
      if (full && div.clientWidth === full.width && div.clientHeight === full.height) {
        return Promise.resolve(div);
      }
      return resize.apply(this, arguments);
    };
  }

  function prefix() {
    var config = document.getElementById("_dash-config");
    return (config && JSON.parse(config.textContent).requests_pathname_prefix) || "/";
  }

  // The URLs of the dashboard's own build that the page names (the module to import first), or none.
  function ownBuild() {
    var meta = document.querySelector('meta[name="prunescope-plotlyjs"]');
    var files = meta ? meta.content.split(" ").filter(Boolean) : [];
    return files.map(function (file) {
      return prefix() + "_prunescope/plotly/" + encodeURIComponent(file);
    });
  }

  function fullBundle() {
    return new Promise(function (resolve, reject) {
      if (!window._dashPlotlyJSURL) throw new Error("no plotly.js URL");
      var script = document.createElement("script");
      script.src = window._dashPlotlyJSURL;
      script.async = true;
      script.onload = resolve;
      script.onerror = reject;
      document.body.appendChild(script);
    });
  }

  function preload() {
    if (window.Plotly) started = true;
    if (started || !PLOT_PAGES.test(window.location.pathname)) return;
    var own = ownBuild();
    if (!own.length && !window._dashPlotlyJSURL) return;
    started = true;
    var loaded = own.length
      ? import(own[0]).catch(function (err) {
          console.warn("PruneScope's plotly.js build did not load; loading plotly.min.js", err);
          return fullBundle();
        })
      : fullBundle();
    var pending = loaded.then(
      function () {
        skipSameSizeResize(window.Plotly);
        deferOffscreen(window.Plotly);
      },
      function (err) {
        if (window.Plotly === pending) delete window.Plotly; // the next graph tries its own loader
        throw err;
      }
    );
    pending.catch(function () {});
    window.Plotly = pending;
  }

  // On those pages, fetch it (without running it) as this script runs, so that it is here to run by then.
  function prefetch() {
    if (!document.getElementById("_dash-config") || !PLOT_PAGES.test(window.location.pathname)) return;
    var own = ownBuild();
    var urls = own.length ? own : [prefix() + "_dash-component-suites/plotly/package_data/plotly.min.js"];
    urls.forEach(function (url) {
      var link = document.createElement("link");
      if (own.length) {
        link.rel = "modulepreload";
      } else {
        link.rel = "preload"; // the URL as dash-renderer has it
        link.as = "script";
      }
      link.href = url;
      document.head.appendChild(link);
    });
  }
  try {
    prefetch();
  } catch (err) {
    /* only earlier: it loads when started */
  }

  var fetch = window.fetch;
  window.fetch = function (resource) {
    if (!started) {
      var url = String((resource && resource.url) || resource);
      if (url.indexOf("_dash-update-component") !== -1) {
        try {
          preload();
        } catch (err) {
          /* plotly.js then loads with the first graph, as without this script */
        }
      }
    }
    return fetch.apply(this, arguments);
  };
})();
