/* Linked highlighting. Hovering a checkpoint's trace in any figure (or its row in the overview grid) dims
   every other checkpoint's traces in every figure of the page; leaving it restores them.

   Traces name their checkpoint in `meta` (dashboard/figures/common.py): {checkpoint: id} for a trace that
   draws one checkpoint (dimmed through its opacity), {checkpoints: [id, ...]} for a trace whose points are
   each a checkpoint (the other points dimmed through `selectedpoints`). Figures are linked as they appear,
   also when the page's poll renders them again. */
(function () {
  "use strict";
  var DIM = 0.15;
  var linked = new WeakSet(); // Plotly's event emitter of each linked graph: a purge makes a new one
  var saved = new WeakMap(); // graph div -> what dimming changed, to put back
  var current = null;
  var fromGrid = false;

  function plots() {
    return Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot"));
  }

  function pointIndex(point) {
    var i = point.pointIndex !== undefined ? point.pointIndex : point.pointNumber;
    return typeof i === "number" ? i : null;
  }

  function checkpointOf(point) {
    var meta = point && point.data && point.data.meta;
    if (!meta) return null;
    if (meta.checkpoint !== undefined && meta.checkpoint !== null) return meta.checkpoint;
    var i = pointIndex(point);
    if (Array.isArray(meta.checkpoints) && i !== null && meta.checkpoints[i] !== undefined) {
      return meta.checkpoints[i];
    }
    return null;
  }

  function restore(gd) {
    var was = saved.get(gd);
    saved.delete(gd);
    if (!was || was.data !== gd.data || !window.Plotly) return; // a new figure came: nothing dimmed in it
    if (was.opacity.length) window.Plotly.restyle(gd, { opacity: was.opacity }, was.opacityIdx);
    if (was.selIdx.length) window.Plotly.restyle(gd, { selectedpoints: was.sel }, was.selIdx);
  }

  function dim(gd, id) {
    if (!Array.isArray(gd.data) || !window.Plotly) return;
    var change = { opacity: [], opacityIdx: [], sel: [], selIdx: [] };
    var was = { data: gd.data, opacity: [], opacityIdx: [], sel: [], selIdx: [] };
    var present = false;
    gd.data.forEach(function (trace, i) {
      var meta = trace.meta;
      if (!meta) return;
      if (meta.checkpoint !== undefined && meta.checkpoint !== null) {
        var original = trace.opacity === undefined ? 1 : trace.opacity;
        present = present || meta.checkpoint === id;
        change.opacity.push(meta.checkpoint === id ? original : DIM * original);
        change.opacityIdx.push(i);
        was.opacity.push(original);
        was.opacityIdx.push(i);
      } else if (Array.isArray(meta.checkpoints)) {
        var keep = [];
        meta.checkpoints.forEach(function (cid, j) {
          if (cid === id) keep.push(j);
        });
        present = present || keep.length > 0;
        change.sel.push(keep);
        change.selIdx.push(i);
        was.sel.push(trace.selectedpoints === undefined ? null : trace.selectedpoints);
        was.selIdx.push(i);
      }
    });
    if (!present) return; // a figure without this checkpoint stays as it is
    saved.set(gd, was);
    if (change.opacityIdx.length) window.Plotly.restyle(gd, { opacity: change.opacity }, change.opacityIdx);
    if (change.selIdx.length) window.Plotly.restyle(gd, { selectedpoints: change.sel }, change.selIdx);
  }

  function highlight(id) {
    if (id === current) return;
    current = id;
    plots().forEach(function (gd) {
      restore(gd);
      if (id !== null) dim(gd, id);
    });
  }

  function link(gd) {
    var emitter = gd._ev;
    if (!emitter || typeof gd.on !== "function" || linked.has(emitter)) return;
    linked.add(emitter);
    gd.on("plotly_hover", function (event) {
      var points = (event && event.points) || [];
      var id = points.length ? checkpointOf(points[0]) : null;
      if (id !== null) {
        fromGrid = false;
        highlight(id);
      }
    });
    gd.on("plotly_unhover", function () {
      highlight(null);
    });
  }

  var scheduled = false;
  function linkAll() {
    scheduled = false;
    plots().forEach(link);
  }
  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(linkAll);
    }
  }

  function onMouseOver(event) {
    var target = event.target;
    if (!target || !target.closest) return;
    var gd = target.closest(".js-plotly-plot");
    if (gd) link(gd); // before Plotly's own handlers see the move: its first hover is caught too
    var row = target.closest(".ps-linked-grid .ag-row[row-id]");
    if (row) {
      var id = Number(row.getAttribute("row-id"));
      if (Number.isFinite(id)) {
        fromGrid = true;
        highlight(id);
        return;
      }
    }
    if (fromGrid) {
      fromGrid = false;
      highlight(null);
    }
  }

  function start() {
    new MutationObserver(schedule).observe(document.body, { childList: true, subtree: true });
    document.addEventListener("mouseover", onMouseOver, true);
    schedule();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
