#!/usr/bin/env node
import { existsSync } from 'node:fs';

const entry = new URL('../dist/kubewire.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('kubewire is not built yet: run `npm run build` in its directory\n');
  process.exit(1);
}
await import(entry.href);
