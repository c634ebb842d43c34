// Bundles the CLI and the CNI plugins with esbuild. The plugin bundle is CommonJS with no
// dependencies so that a plugin process starts as fast as Node allows. The CLI is split:
// what `kubewire get` needs loads at start; the daemon, the ingress controller and the
// workload host (undici, prom-client, SQLite) are chunks loaded by their own commands.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist', { recursive: true, force: true });
const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' };
await Promise.all([
  build({ ...common, entryPoints: ['src/cni/plugins/main.ts'], outfile: 'dist/cni-plugins.cjs', format: 'cjs', sourcemap: false }),
  build({ ...common, entryPoints: { kubewire: 'src/cli/main.ts' }, outdir: 'dist', splitting: true, chunkNames: 'chunks/[name]-[hash]', format: 'esm', packages: 'external' }),
]);
