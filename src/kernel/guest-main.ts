// The guest agent's own entry point (dist/guest.js): what a cluster's kernel starts at boot. It
// loads the agent alone, not the CLI's commands: every file Node reads in there goes through
// hostfs, so the CLI's bundle would cost the boot about a second.

import { runGuest } from './guest.ts';

const at = process.argv.indexOf('--channel');
if (at < 0 || !process.argv[at + 1]) {
  process.stderr.write('usage: guest.js --channel DEVICE\n');
  process.exit(2);
}
await runGuest(process.argv[at + 1]!);
