/* plotly.js with the traces the dashboard's figures draw (dashboard/figures), and no other.

   scatter (in plotly.js's core), bar, contour, heatmap and scattergl are here; surface and scatter3d (a
   WebGL 3D scene: about a third of the size and of the evaluation time) are in ./gl3d.js, which
   loads with the first figure that has one of them (the landscape tab's 3D surface, drawn on demand).

   A call to Plotly.react or Plotly.newPlot with such a figure waits for ./gl3d.js, and every call made
   while it loads waits too, so that figures are drawn in the order they were asked for. Should it fail to
   load, the calls go on without it (those traces are then not drawn, as with any unknown trace type).

   Like plotly.js's own bundles it sets window.Plotly when it runs. */
import Plotly from "plotly.js/lib/core";
import bar from "plotly.js/lib/bar";
import contour from "plotly.js/lib/contour";
import heatmap from "plotly.js/lib/heatmap";
import scattergl from "plotly.js/lib/scattergl";

Plotly.register([bar, contour, heatmap, scattergl]);

const LATER = ["surface", "scatter3d"]; // the traces of ./gl3d.js

let gl3d = null; // the promise of ./gl3d.js, once a figure asked for it
let settled = false; // ./gl3d.js has been registered, or has failed to load

function traces(args) {
  // (gd, data, layout, config) or (gd, {data, layout, config, frames})
  const second = args[1];
  return Array.isArray(second) ? second : (second && second.data) || [];
}

function wantsGl3d(args) {
  return traces(args).some((trace) => trace && LATER.indexOf(trace.type) !== -1);
}

function loadGl3d() {
  if (!gl3d) {
    gl3d = import("./gl3d.js").then(
      (module) => {
        Plotly.register(module.default);
        settled = true;
      },
      (err) => {
        settled = true;
        console.error("plotly.js: surface and scatter3d did not load", err);
      },
    );
  }
  return gl3d;
}

for (const name of ["react", "newPlot"]) {
  const draw = Plotly[name];
  Plotly[name] = function (...args) {
    if (settled || (!gl3d && !wantsGl3d(args))) return draw.apply(this, args);
    return loadGl3d().then(() => draw.apply(this, args));
  };
}

window.Plotly = Plotly;
export default Plotly;
