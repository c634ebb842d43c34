// The suite of `npm test` (after `npm run build`), in two phases:
// 1. the type check, the layering rules and the files of `npm run test:unit`, all at once. Those
//    files need no cluster of their own (as root a few also bring one up, each with its own
//    name) and are independent, so they run two at a time beside tsc and dependency-cruiser;
// 2. every other file, one at a time: they bring up clusters on the machine's kernel and time
//    real traffic, which another file beside them would disturb.
// A failed check stops the suite before phase 2, as `npm run typecheck && ...` did; a failed
// test file does not: every file runs, and the exit status says whether all passed.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TIMEOUT = '--test-timeout=1200000';

/** The test files of `npm run test:unit` (those that need no root): the one list of phase 1. */
function unitFiles(pkg) {
  return pkg.scripts['test:unit'].split(/\s+/).filter((w) => /^test\/.*\.test\.ts$/.test(w));
}

/** Every test file, as a shell's test/*.test.ts gives them (no dot files), in order. */
function allFiles() {
  return readdirSync('test').filter((f) => f.endsWith('.test.ts') && !f.startsWith('.')).sort().map((f) => `test/${f}`);
}

/** Runs a command; with `quiet`, its output is kept and printed whole once it ends (checks beside the tests). */
function run(argv, { quiet = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: quiet ? ['ignore', 'pipe', 'pipe'] : ['inherit', 'pipe', 'inherit'] });
    let out = '';
    if (quiet) {
      child.stdout.on('data', (b) => (out += b));
      child.stderr.on('data', (b) => (out += b));
    } else {
      // Passed through as it comes; the runner's own summary lines ("# pass N" at the start of a
      // line, not a suite's indented ones) are added up for the suite's closing line.
      let partial = '';
      child.stdout.on('data', (b) => {
        process.stdout.write(b);
        const lines = (partial + b).split('\n');
        partial = lines.pop();
        for (const line of lines) {
          const m = /^# (tests|pass|fail|skipped|cancelled) (\d+)$/.exec(line);
          if (m) totals[m[1]] += Number(m[2]);
        }
      });
    }
    const started = Date.now();
    child.on('close', (code, signal) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (quiet) process.stdout.write(`# ${argv.join(' ')}: exit ${code ?? signal} in ${seconds} s\n${out}`);
      else process.stdout.write(`# ${argv.slice(0, 6).join(' ')} …: exit ${code ?? signal} in ${seconds} s\n`);
      resolve(code === 0);
    });
  });
}

/** Both phases' counts, for one closing line. */
const totals = { tests: 0, pass: 0, fail: 0, skipped: 0, cancelled: 0 };

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const unit = unitFiles(pkg);
const all = allFiles();
const missing = unit.filter((f) => !all.includes(f));
if (missing.length) {
  console.error(`test:unit names files that do not exist: ${missing.join(', ')}`);
  process.exit(1);
}
const e2e = all.filter((f) => !unit.includes(f));
const node = process.execPath;

const [typecheck, layers, unitOk] = await Promise.all([
  run(['npm', 'run', '-s', 'typecheck'], { quiet: true }),
  run(['npm', 'run', '-s', 'layers'], { quiet: true }),
  run([node, '--import', 'tsx', '--test', '--test-concurrency=2', TIMEOUT, ...unit]),
]);
if (!(typecheck && layers)) {
  console.error('the type check or the layering rules failed (above): the e2e files are not run');
  process.exit(1);
}
const e2eOk = await run([node, '--import', 'tsx', '--test', '--test-concurrency=1', TIMEOUT, ...e2e]);
process.stdout.write(`${totals.pass} passed, ${totals.fail + totals.cancelled} failed, ${totals.skipped} skipped (of ${totals.tests} tests, both phases)\n`);
process.exit(unitOk && e2eOk ? 0 : 1);
