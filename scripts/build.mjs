// Bundles the CLI and the CNI plugins with esbuild. The plugin bundle is CommonJS with no
// dependencies so that a plugin process starts as fast as Node allows. The CLI is split:
// what `kubewire get` needs loads at start; the daemon, the ingress controller and the
// workload host (undici, prom-client, SQLite) are chunks loaded by their own commands. The
// packages are bundled too (but SQLite's native addon): resolving and reading yaml's 60
// files from node_modules took a quarter of a start in a user-mode kernel, where every
// file read goes through the host. Their CommonJS gets a `require` from createRequire.
// The bundle is built beside dist/ and swapped in by rename, so that a build never leaves a
// running cluster or test without its CLI (a daemon starting in the meantime finds either the
// old bundle or the new one, whole).
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const out = `dist.new-${process.pid}`;
rmSync(out, { recursive: true, force: true });
try {
  const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' };
  await Promise.all([
    build({ ...common, entryPoints: ['src/cni/plugins/main.ts'], outfile: `${out}/cni-plugins.cjs`, format: 'cjs', sourcemap: false }),
    build({ ...common, entryPoints: { kubewire: 'src/cli/main.ts', guest: 'src/kernel/guest-main.ts' }, outdir: out, splitting: true, chunkNames: 'chunks/[name]-[hash]', format: 'esm', external: ['better-sqlite3'], banner: { js: "import { createRequire as __kubewireRequire } from 'node:module'; const require = __kubewireRequire(import.meta.url);" } }),
    // The page of `kubewire ui`: everything in one file (no CDN: the lab has no internet).
    build({ bundle: true, platform: 'browser', target: 'es2022', format: 'esm', minify: true, logLevel: 'warning', entryPoints: ['src/ui/web/app.ts'], outfile: `${out}/ui/app.js` }),
  ]);
  mkdirSync(`${out}/ui`, { recursive: true });
  copyFileSync('src/ui/web/index.html', `${out}/ui/index.html`);
} catch (e) {
  rmSync(out, { recursive: true, force: true });
  throw e;
}
const old = `dist.old-${process.pid}`;
if (existsSync('dist')) renameSync('dist', old);
renameSync(out, 'dist');
rmSync(old, { recursive: true, force: true });
