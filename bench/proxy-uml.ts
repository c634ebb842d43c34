// bench:proxy inside a user-mode Linux kernel (src/supervisor/uml.ts): IPVS mode beside
// iptables mode (iptables-legacy, the only iptables that kernel has; it has no nf_tables ip
// family, so no nftables mode) in the same kernel, at the same sizes, through the same script.
//   npm run bench:proxy:uml      SIZES=1000,10000 (default)   MODES=ipvs,iptables (default)

import { runInUml, umlMissing } from '../src/supervisor/uml.ts';

const missing = umlMissing();
if (missing) {
  console.log(`not run: ${missing}`);
  process.exit(0);
}
const env = { SIZES: process.env.SIZES ?? '1000,10000', MODES: process.env.MODES ?? 'ipvs,iptables', IPTABLES_BACKEND: 'legacy', IPTABLES_MAX: process.env.IPTABLES_MAX ?? '2000' };
console.log(`inside UML (${env.MODES}; SIZES=${env.SIZES}); the kernel boots, runs bench/proxy.ts, powers off\n`);
const r = await runInUml({ command: 'node --expose-gc --import tsx bench/proxy.ts', cwd: process.cwd(), env, memMB: 4096, timeoutMs: 3_600_000 });
process.stdout.write(r.output);
console.log(`\n(UML run: ${r.seconds.toFixed(0)} s, exit ${r.code ?? 'none: the kernel stopped first'})`);
if (r.code !== 0) {
  console.log(r.console.split('\n').slice(-20).join('\n'));
  process.exitCode = 1;
}
