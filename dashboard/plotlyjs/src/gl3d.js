/* The 3D traces of the dashboard's figures, loaded by ./index.js with the first figure that has one. */
import scatter3d from "plotly.js/lib/scatter3d";
import surface from "plotly.js/lib/surface";

export default [surface, scatter3d];
