/* Builds dist/: the plotly.js that the dashboard serves (`make plotlyjs`; dashboard/plotly_bundle.py).

   src/index.js (plotly.js's core and the 2D traces the figures draw) and src/gl3d.js (its 3D traces, loaded
   on demand) as ES modules, with the code they share in a chunk of its own; every file name carries a hash
   of its content. dist/manifest.json, written last, names them for the server:
   {"plotly_version", "entry": the module pages import, "preload": its static imports, "files": all}.

   As plotly.js's own build (its esbuild-config.js and tasks/compress_attributes.js), the attributes' meta
   data (descriptions, for its schema and documentation) are stripped: a tenth of the bytes. Unlike its dist
   files, the bundle is not wrapped in a function expression that V8 parses twice (lazily, then fully when
   it is called), which took about 40% of plotly.min.js's evaluation time in Chromium here. */
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, "dist");
const PLOTLY = JSON.parse(await readFile(path.join(HERE, "node_modules/plotly.js/package.json"), "utf8"));

// plotly.js's tasks/compress_attributes.js: `key: '...'`, `key: [...].join(...)` and `key: [...]`
const meta = (pattern) => new RegExp("\\s*" + pattern + ",?", "g");
const STRIP = [
  meta("description: '.*'"),
  meta("description: \\[[\\s\\S]*?\\]\\.join\\([\\s\\S]*?\\)"),
  meta("requiredOpts: \\[[\\s\\S]*?\\]"),
  meta("otherOpts: \\[[\\s\\S]*?\\]"),
  meta("role: '.*'"),
  meta("hrName: '.*'"),
];
const stripMeta = {
  name: "strip-meta-attributes",
  setup(b) {
    b.onLoad({ filter: /[\\/]plotly\.js[\\/]src[\\/].*\.js$/ }, async (args) => {
      let code = await readFile(args.path, "utf8");
      for (const pattern of STRIP) code = code.replace(pattern, "");
      return { contents: code, loader: "js" };
    });
  },
};

await rm(OUT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: HERE,
  entryPoints: { plotly: "src/index.js" },
  outdir: OUT,
  format: "esm",
  splitting: true,
  bundle: true,
  minify: true,
  target: "es2016",
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  metafile: true,
  plugins: [stripMeta],
  loader: { ".css": "empty" }, // maplibre-gl's, for map traces only
  alias: { regl: "@plotly/regl" }, // as plotly.js's build: one regl for gl-text and the traces
  define: { global: "window", "define.amd": "false", "process.env.NODE_DEBUG": "false" },
  banner: { js: `/* plotly.js v${PLOTLY.version} (PruneScope's build, dashboard/plotlyjs) | MIT license */` },
  logLevel: "warning",
});

const outputs = Object.entries(result.metafile.outputs).map(([file, out]) => [path.basename(file), out]);
const [entry, entryOut] = outputs.find(([, out]) => out.entryPoint === "src/index.js");
const manifest = {
  plotly_version: PLOTLY.version,
  entry,
  preload: entryOut.imports.filter((i) => i.kind === "import-statement").map((i) => path.basename(i.path)),
  files: outputs.map(([file]) => file).sort(),
};
await writeFile(path.join(OUT, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
for (const [file, out] of outputs) console.log(`dashboard/plotlyjs/dist/${file}: ${Math.round(out.bytes / 1024)} KB`);
