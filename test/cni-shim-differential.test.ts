// The differential suite against the reference plugins (test/differential.test.ts) again,
// with kubewire's plugins executed as the C shim handing every call to a plugin server:
// the same namespace state, results, error codes and files on disk as the reference's (and
// as the Node.js executables'). At the end, the calls were the server's, none declined.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { builtShimPath, installPlugins } from '../src/cni/install.ts';
import { CniServer } from '../src/cni/server/server.ts';
import { linux } from '../src/dataplane/linux/host.ts';

const dir = mkdtempSync(join(tmpdir(), 'kwt-shim-'));
const socket = join(dir, 'cni.sock');
const server = new CniServer({ socket, dataplane: linux });
const shim = builtShimPath();
if (shim) {
  installPlugins({ dir: join(dir, 'bin'), shim, socket });
  await server.listen();
  process.env.KUBEWIRE_TEST_PLUGIN_DIR = join(dir, 'bin');
} else {
  console.log('# skip: the CNI shim is not built (npm install builds build/Release/kubewire-cni-shim)');
}

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`# plugin server: ${server.stats.served} calls served, ${server.stats.declined} declined`);
  if (shim && process.getuid?.() === 0) {
    assert.ok(server.stats.served > 20, `the shim's calls went to the server (served ${server.stats.served})`);
    assert.equal(server.stats.declined, 0, 'the server declined calls');
  }
});

if (shim) await import('./differential.test.ts');
