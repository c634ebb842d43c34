// Bundles the CLI and the CNI plugins with esbuild. The plugin bundle is CommonJS with no
// dependencies so that a plugin process starts as fast as Node allows.
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'inline', logLevel: 'warning' };
await Promise.all([
  build({ ...common, entryPoints: ['src/cni/plugins/main.ts'], outfile: 'dist/cni-plugins.cjs', format: 'cjs', sourcemap: false }),
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/kubewire.js', format: 'esm', packages: 'external' }),
]);
