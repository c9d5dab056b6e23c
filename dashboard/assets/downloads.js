// Figure downloads: the PNG / SVG / CSV buttons that dashboard/components/graph.py puts under each figure.
// PNG and SVG come from Plotly.downloadImage on the figure as drawn; CSV from the server
// (dashboard/downloads.py), which gets the drawn traces and answers a tidy CSV.
(function () {
  "use strict";

  function drawnFigure(button) {
    const box = button.closest(".ps-figure");
    return box ? box.querySelector(".js-plotly-plot") : null;
  }

  function prefix() {
    const config = document.getElementById("_dash-config");
    try {
      return JSON.parse(config.textContent).requests_pathname_prefix || "/";
    } catch (err) {
      return "/";
    }
  }

  function plainArrays(key, value) {
    return ArrayBuffer.isView(value) ? Array.from(value) : value;
  }

  function save(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function failed(button, err) {
    button.title = "Download failed: " + String(err && err.message ? err.message : err);
    button.classList.add("ps-download-failed");
  }

  async function downloadCsv(gd, name, button) {
    const body = JSON.stringify({ name: name, figure: { data: gd.data || [] } }, plainArrays);
    const resp = await fetch(prefix() + "_prunescope/figure.csv", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body,
    });
    if (!resp.ok) throw new Error("the server answered " + resp.status);
    save(await resp.blob(), "prunescope-" + name + ".csv");
  }

  function downloadImage(gd, name, format) {
    const layout = gd._fullLayout || {};
    return window.Plotly.downloadImage(gd, {
      format: format,
      filename: "prunescope-" + name,
      width: layout.width,
      height: layout.height,
      scale: format === "png" ? 2 : 1,
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("[data-ps-download]") : null;
    if (!button) return;
    const gd = drawnFigure(button);
    if (!gd || !window.Plotly) return failed(button, "the figure is not drawn yet");
    const format = button.dataset.psDownload;
    const name = button.dataset.psName || "figure";
    const done = format === "csv" ? downloadCsv(gd, name, button) : downloadImage(gd, name, format);
    Promise.resolve(done).catch(function (err) { failed(button, err); });
  });
})();
