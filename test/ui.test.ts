// `kubewire ui` in a real browser (root): Debian's Chromium driven by playwright-core against
// a 2-node cluster, the page served by `kubewire ui` as a user starts it. The page must show
// every node and pod with its IP, follow a scale-up and a deletion live, show a pod's details
// from the keyboard, draw a trace, stay readable in a narrow window and log no errors.
// Screenshots go to test-artifacts/.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Pod } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, Kube, waitFor, webApp } from './kube.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = NOT_ROOT || (existsSync(CHROMIUM) ? false : `Debian's chromium is not installed at ${CHROMIUM} (scripts/setup.sh installs it)`);
const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts');

describe('kubewire ui in Chromium', { skip }, () => {
  const cluster = 'kui';
  let stateDir: string;
  let kube: Kube;
  let ui: ChildProcess;
  let url: string;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-ui-'));
    kube = new Kube(cluster, stateDir);
    mkdirSync(ARTIFACTS, { recursive: true });
    await kube.ok('up', '--nodes', '2');
    await kube.apply(`${webApp({ replicas: 2 })}---\n${echoPod('client')}`);
    await waitFor('pods running', async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items.filter((p) => p.status?.phase === 'Running').length === 3, 30_000);
    ui = spawn(process.execPath, [join(import.meta.dirname, '..', 'bin', 'kubewire.js'), 'ui', '--port', '0'], { env: { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBEWIRE_CLUSTER: cluster }, stdio: ['ignore', 'pipe', 'pipe'] });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      ui.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /(http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      ui.once('exit', (code) => reject(new Error(`kubewire ui exited (${code}): ${out}`)));
      setTimeout(() => reject(new Error(`kubewire ui printed no URL: ${out}`)), 15_000);
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    ui?.kill('SIGINT');
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const inventory = () => page.locator('#inventory button').allTextContents();
  const pods = async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items;

  test('the page shows every node and pod with its IP, the underlay, the router and the Service', async () => {
    await page.goto(url);
    await page.waitForFunction(() => (window as any).kubewire?.ready, null, { timeout: 15_000 });
    const items = await inventory();
    for (const n of ['kui-node-1', 'kui-node-2']) {
      assert.ok(items.some((i) => i.startsWith(`node ${n} 172.18.0.`)), `node ${n} with its eth0 address`);
      assert.ok(items.some((i) => i.startsWith(`bridge ${n} 10.244.`)), `cni0 of ${n} with its gateway address`);
    }
    for (const p of await pods()) assert.ok(items.includes(`pod ${p.metadata.namespace}/${p.metadata.name} ${p.status!.podIP}`), `pod ${p.metadata.name} at ${p.status!.podIP}: ${items.join(' | ')}`);
    assert.ok(items.includes('router router 172.18.0.1'));
    assert.ok(items.some((i) => /^service default\/web 10\.\d+\.\d+\.\d+$/.test(i)));
    // The graph holds the same: each pod inside its node's box, joined to cni0 by its veth pair.
    const graph = await page.evaluate(() => (window as any).kubewire.cy.nodes('[kind = "pod"]').map((n: any) => ({ id: n.id(), parent: n.data('parent'), veth: n.connectedEdges('[kind = "veth"]').map((e: any) => e.data('label'))[0] })));
    for (const p of (await pods()).filter((x) => x.metadata.namespace === 'default')) {
      const g = graph.find((x: any) => x.id === `pod/default/${p.metadata.name}`);
      assert.equal(g?.parent, `node/${p.spec.nodeName}`);
      assert.match(g?.veth ?? '', /^eth0 ↔ veth[0-9a-f]+$/);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'ui-cluster.png') });
  });

  test('a scale-up and a deletion show without a reload', async () => {
    await kube.ok('scale', 'deployment/web', '--replicas', '4');
    const four = await waitFor('4 web pods with IPs on the page', async () => {
      const items = (await inventory()).filter((i) => /^pod default\/web-\S+ 10\.244\.\d+\.\d+$/.test(i));
      return items.length === 4 ? items : undefined;
    }, 30_000);
    const victim = four[0]!.split(' ')[1]!.split('/')[1]!;
    await kube.ok('delete', 'pod', victim, '--wait=false');
    await waitFor(`${victim} gone from the page`, async () => !(await inventory()).some((i) => i.includes(`/${victim} `)), 30_000);
    await page.screenshot({ path: join(ARTIFACTS, 'ui-scaled.png') });
  });

  test("a pod's details from the keyboard: its addresses, routes and ARP entries", async () => {
    const client = (await pods()).find((p) => p.metadata.name === 'client')!;
    const button = page.locator('#inventory button', { hasText: 'pod default/client ' });
    await button.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /Routes:/.test(document.getElementById('details')!.textContent ?? ''), null, { timeout: 10_000 });
    const text = (await page.textContent('#details'))!;
    assert.match(text, new RegExp(`IP: ${client.status!.podIP!.replaceAll('.', '\\.')}`));
    assert.match(text, /default via 10\.244\.\d+\.1 dev eth0/);
    assert.match(text, /ARP \(neighbours\):/);
  });

  test('a trace drawn on the graph: request and reply, hop table and verdict', async () => {
    await page.selectOption('#from', 'pod/default/client');
    await page.fill('#to', 'service/default/web');
    await page.click('#run');
    await page.waitForFunction(() => (window as any).kubewire.lastTrace, null, { timeout: 15_000 });
    assert.match((await page.textContent('#verdict'))!, /^DELIVERED: delivered to pod\/default\/web-/);
    const drawn = await page.evaluate(() => ({ request: (window as any).kubewire.cy.edges('.trace-request').length, reply: (window as any).kubewire.cy.edges('.trace-reply').length, onPath: (window as any).kubewire.cy.nodes('.on-path').map((n: any) => n.id()) }));
    assert.ok(drawn.request >= 2 && drawn.reply >= 2, JSON.stringify(drawn));
    assert.ok(drawn.onPath.includes('pod/default/client'));
    assert.ok(drawn.onPath.some((id: string) => id.startsWith('cni0/')));
    assert.ok((await page.locator('#hops tbody tr').count()) > 5);
    await page.screenshot({ path: join(ARTIFACTS, 'ui-trace.png') });
  });

  test('readable in a narrow window, and no console errors', async () => {
    await page.setViewportSize({ width: 480, height: 900 });
    const graph = (await page.locator('#graph').boundingBox())!;
    const aside = (await page.locator('aside').boundingBox())!;
    assert.ok(aside.y >= graph.y + graph.height - 1, 'the side panel goes below the graph');
    assert.ok(aside.width <= 480 && graph.width <= 480);
    await page.screenshot({ path: join(ARTIFACTS, 'ui-narrow.png'), fullPage: true });
    assert.deepEqual(errors, []);
  });
});
