// Bundles the CLI and the CNI plugins with esbuild. The plugin bundle is CommonJS with no
// dependencies so that a plugin process starts as fast as Node allows. The CLI is split:
// what `kubewire get` needs loads at start; the daemon, the ingress controller and the
// workload host (undici, prom-client, SQLite) are chunks loaded by their own commands.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist', { recursive: true, force: true });
const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' };
await Promise.all([
  build({ ...common, entryPoints: ['src/cni/plugins/main.ts'], outfile: 'dist/cni-plugins.cjs', format: 'cjs', sourcemap: false }),
  build({ ...common, entryPoints: { kubewire: 'src/cli/main.ts' }, outdir: 'dist', splitting: true, chunkNames: 'chunks/[name]-[hash]', format: 'esm', packages: 'external' }),
  // The page of `kubewire ui`: everything in one file (no CDN: the lab has no internet).
  build({ bundle: true, platform: 'browser', target: 'es2022', format: 'esm', minify: true, logLevel: 'warning', entryPoints: ['src/ui/web/app.ts'], outfile: 'dist/ui/app.js' }),
]);
mkdirSync('dist/ui', { recursive: true });
copyFileSync('src/ui/web/index.html', 'dist/ui/index.html');
// ELK runs in a Web Worker (its layout never holds up the page): the worker script as elkjs ships it.
copyFileSync('node_modules/elkjs/lib/elk-worker.min.js', 'dist/ui/elk-worker.js');
