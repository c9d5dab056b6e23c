/* Start plotly.js while a page's first callbacks are on the server.

   dcc.Graph loads plotly.js (4.8 MB; about a second of main-thread evaluation on a slow machine) only when
   its first graph mounts, which is after the callback that draws the figures has come back: the page then
   waits for the server and for plotly.js one after the other. The compare page and shared views (and any
   page whose layout holds an element with `data-ps-plotly`) start plotly.js when their first callback
   request goes out, so its evaluation runs while the main thread would otherwise wait for responses.

   Until the script has run, `window.Plotly` is a promise of it: dcc.Graph waits on
   `Promise.resolve(window.Plotly || <its own loader>)`, so it waits for this script rather than adding a
   second copy. plotly.js replaces the promise with itself when it runs.

   dcc.Graph also resizes every graph once right after drawing it (`Plotly.Plots.resize`), which redraws
   the whole figure even when its box has not changed: 20-60% of the first drawing again, after all the
   graphs are drawn. Once plotly.js has run, a resize of a graph whose box already has the drawn size
   returns at once; any other resize goes on as before. */
(function () {
  "use strict";
  var started = false;
  // the compare page and shared views: started with the first callback (which draws the page's layout)
  var PLOT_PAGES = /\/(compare|s\/[^/]+)\/?$/;

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

  function preload() {
    if (window.Plotly) started = true;
    if (started || !window._dashPlotlyJSURL) return;
    if (!PLOT_PAGES.test(window.location.pathname) && !document.querySelector("[data-ps-plotly]")) return;
    started = true;
    var script = document.createElement("script");
    script.src = window._dashPlotlyJSURL;
    script.async = true;
    var pending = new Promise(function (resolve, reject) {
      script.onload = function () {
        skipSameSizeResize(window.Plotly);
        resolve();
      };
      script.onerror = function (event) {
        if (window.Plotly === pending) delete window.Plotly; // the next graph tries its own loader
        reject(event);
      };
    });
    pending.catch(function () {});
    window.Plotly = pending;
    document.body.appendChild(script);
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
