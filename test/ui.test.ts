// `kubewire ui` in a real browser (root): Debian's Chromium driven by playwright-core against
// a 2-node cluster, the page served by `kubewire ui` as a user starts it. The page must show
// every node and pod with its IP, follow a scale-up and a deletion live, draw no two elements
// over each other at 6 and at 12+ pods per node and fit its canvas, show a pod's details from
// the keyboard, draw a trace along the elements it crossed, stay readable in a narrow window
// and log no errors; the server must refuse requests without its token, on another Host, from
// another Origin, and answer bad JSON with a 400. Screenshots (taken once the page says its
// layout is done) go to test-artifacts/.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
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
  /** The page has drawn what it was sent (data-layout="done", set once the frame is painted). */
  const settled = async () => {
    await page.waitForSelector('html[data-layout="done"]', { timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 300)); // a graph on its way shows as pending again
    await page.waitForSelector('html[data-layout="done"]', { timeout: 15_000 });
  };
  /** What the browser drew, measured in it: the leaves' boxes with their labels (pairs that overlap), pods outside their node's box, node boxes that overlap, the picture against the canvas, the veth pairs' lines. */
  const measure = () =>
    page.evaluate(`(() => {
      const cy = window.kubewire.cy;
      const hit = (a, b) => a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
      const leaves = cy.nodes().filter((n) => n.data('kind') !== 'node').map((n) => ({ id: n.id(), b: n.boundingBox({ includeLabels: true }) }));
      const overlaps = [];
      for (let i = 0; i < leaves.length; i++) for (let j = i + 1; j < leaves.length; j++) if (hit(leaves[i].b, leaves[j].b)) overlaps.push(leaves[i].id + ' / ' + leaves[j].id);
      const boxes = cy.nodes('[kind = "node"]').map((n) => ({ id: n.id(), b: n.boundingBox({ includeLabels: false }) }));
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) if (hit(boxes[i].b, boxes[j].b)) overlaps.push(boxes[i].id + ' / ' + boxes[j].id);
      // (A node's box is drawn behind its pods: the pods name it as data('box').)
      const outside = cy.nodes('[kind = "pod"]').filter((p) => { const b = p.boundingBox({ includeLabels: true }); const o = cy.getElementById(p.data('box')).boundingBox({ includeLabels: false }); return b.x1 < o.x1 || b.x2 > o.x2 || b.y1 < o.y1 || b.y2 > o.y2; }).map((p) => p.id());
      const r = cy.elements().renderedBoundingBox({ includeLabels: true });
      const veths = cy.edges('[kind = "veth"]').map((e) => { const s = e.sourceEndpoint(), t = e.targetEndpoint(); return { id: e.id(), visible: e.visible(), level: Math.abs(s.y - t.y) < 0.5, length: Math.abs(s.x - t.x) }; });
      return { pods: cy.nodes('[kind = "pod"]').length, overlaps, outside, fits: r.x1 >= -1 && r.y1 >= -1 && r.x2 <= cy.width() + 1 && r.y2 <= cy.height() + 1, rendered: r, canvas: [cy.width(), cy.height()], veths };
    })()`) as Promise<{ pods: number; overlaps: string[]; outside: string[]; fits: boolean; rendered: unknown; canvas: number[]; veths: Array<{ id: string; visible: boolean; level: boolean; length: number }> }>;
  const readable = async (perNode: number, shot: string) => {
    await settled();
    const m = await measure();
    assert.deepEqual(m.overlaps, [], `no two elements drawn over each other (${m.pods} pods)`);
    assert.deepEqual(m.outside, [], 'every pod inside its node');
    assert.ok(m.fits, `the picture fits its canvas: ${JSON.stringify(m.rendered)} in ${m.canvas}`);
    assert.ok(m.veths.length >= m.pods - 2, `a veth pair per pod: ${m.veths.length}`);
    for (const v of m.veths) assert.ok(v.visible && v.level && v.length >= 20, `${v.id} drawn, a level line to its bridge: ${JSON.stringify(v)}`);
    const perNodeDrawn = await page.evaluate(() => (window as any).kubewire.cy.nodes('[kind = "node"]').map((n: any) => (window as any).kubewire.cy.nodes('[kind = "pod"]').filter((p: any) => p.data('box') === n.id()).length) as number[]);
    assert.ok(Math.min(...perNodeDrawn) >= perNode, `at least ${perNode} pods on each node: ${perNodeDrawn}`);
    await page.screenshot({ path: join(ARTIFACTS, shot) });
  };
  const runningWeb = (n: number) =>
    waitFor(`${n} web pods with IPs on the page`, async () => (await inventory()).filter((i) => /^pod default\/web-\S+ 10\.244\.\d+\.\d+$/.test(i)).length === n, 60_000);
  const pods = async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items;

  test('the page shows every node and pod with its IP, the underlay, the router and the Service', async () => {
    await page.goto(url);
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar for a cookie');
    await page.waitForFunction(() => (window as any).kubewire?.ready, null, { timeout: 15_000 });
    await settled();
    const items = await inventory();
    for (const n of ['kui-node-1', 'kui-node-2']) {
      assert.ok(items.some((i) => i.startsWith(`node ${n} 172.18.0.`)), `node ${n} with its eth0 address`);
      assert.ok(items.some((i) => i.startsWith(`bridge ${n} 10.244.`)), `cni0 of ${n} with its gateway address`);
    }
    for (const p of await pods()) assert.ok(items.includes(`pod ${p.metadata.namespace}/${p.metadata.name} ${p.status!.podIP}`), `pod ${p.metadata.name} at ${p.status!.podIP}: ${items.join(' | ')}`);
    assert.ok(items.includes('router router 172.18.0.1'));
    assert.ok(items.some((i) => /^service default\/web 10\.\d+\.\d+\.\d+$/.test(i)));
    // The graph holds the same: each pod inside its node's box, joined to cni0 by its veth pair.
    const graph = await page.evaluate(() => (window as any).kubewire.cy.nodes('[kind = "pod"]').map((n: any) => ({ id: n.id(), parent: n.data('box'), veth: n.connectedEdges('[kind = "veth"]').map((e: any) => e.data('label'))[0] })));
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
    await settled();
    await page.screenshot({ path: join(ARTIFACTS, 'ui-scaled.png') });
  });

  test('no two elements overlap and the picture fits its canvas: 6 pods per node, then 12 and more', async () => {
    // 2 DNS pods and the client beside the web pods: 10 web pods make 13, at least 6 a node.
    await kube.ok('scale', 'deployment/web', '--replicas', '10');
    await runningWeb(10);
    await readable(6, 'ui-6-per-node.png');
    await kube.ok('scale', 'deployment/web', '--replicas', '24');
    await runningWeb(24);
    await readable(12, 'ui-12-per-node.png');
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
    const drawn = await page.evaluate(() => ({ request: (window as any).kubewire.cy.edges('.t-req').length, reply: (window as any).kubewire.cy.edges('.t-rep').length, onPath: (window as any).kubewire.cy.nodes('.on-path').map((n: any) => n.id()) }));
    assert.ok(drawn.request >= 2 && drawn.reply >= 2, JSON.stringify(drawn));
    assert.ok(drawn.onPath.includes('pod/default/client'));
    assert.ok(drawn.onPath.some((id: string) => id.startsWith('cni0/')));
    assert.ok((await page.locator('#hops tbody tr').count()) > 5);
    // A path across the elements it crossed: each step on an edge the graph has (a veth pair, a link), one after the other, never from an element to itself.
    // (A string: tsx would wrap an inner function in a helper the page does not have.)
    const path = (await page.evaluate(`(() => {
      const k = window.kubewire;
      const step = (s) => ({ ...s, kind: s.edge ? k.cy.getElementById(s.edge).data('kind') : 'jump' });
      return { request: k.lastPath.request.map(step), reply: k.lastPath.reply.map(step), added: k.cy.edges('.t-jump').length, curved: k.cy.edges('.t-req, .t-rep').filter((e) => e.style('curve-style') !== 'straight').length };
    })()`)) as { request: any[]; reply: any[]; added: number; curved: number };
    for (const leg of [path.request, path.reply]) {
      assert.ok(leg.length >= 2, JSON.stringify(path));
      leg.forEach((s: any, i: number) => {
        assert.ok(s.kind === 'veth' || s.kind === 'link', `step ${i + 1} on the graph's own edge: ${JSON.stringify(s)}`);
        assert.notEqual(s.from, s.to);
        if (i) assert.equal(s.from, leg[i - 1].to, 'one step after the other');
      });
    }
    assert.equal(path.request[0].from, 'pod/default/client');
    assert.match(path.request.at(-1).to, /^pod\/default\/web-/);
    assert.equal(path.reply.at(-1).to, 'pod/default/client');
    assert.equal(path.added, 0, 'no edge added between boxes');
    assert.equal(path.curved, 0, 'no loops');
    // The hop table has room: as wide as the graph, below it, and the graph keeps its room beside the panel.
    const table = (await page.locator('#hops').boundingBox())!;
    const graph = (await page.locator('#graph').boundingBox())!;
    const aside = (await page.locator('aside').boundingBox())!;
    assert.ok(table.width >= graph.width - 40 && table.y >= graph.y + graph.height - 1, `the hop table below the graph, as wide: ${JSON.stringify({ table, graph })}`);
    assert.ok(graph.x + graph.width <= aside.x + 1, 'the panel beside the graph, not over it');
    await settled();
    await page.screenshot({ path: join(ARTIFACTS, 'ui-trace.png') });
  });

  test('a click shows details and leaves the graph where it was (nothing panned under the panel)', async () => {
    const before = await page.evaluate(() => ({ ...(window as any).kubewire.cy.pan(), zoom: (window as any).kubewire.cy.zoom() }));
    const at = await page.evaluate(() => {
      const k = (window as any).kubewire;
      const p = k.cy.nodes('[kind = "pod"]').last().renderedPosition();
      const r = document.getElementById('graph')!.getBoundingClientRect();
      return { x: r.x + p.x, y: r.y + p.y };
    });
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction(() => /IP:/.test(document.getElementById('details')!.textContent ?? ''), null, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => ({ ...(window as any).kubewire.cy.pan(), zoom: (window as any).kubewire.cy.zoom() })), before);
  });

  test('safe by default: no token 401, a wrong one 403, another Host 403 (DNS rebinding), another Origin 403, bad JSON 400', async () => {
    const { port, searchParams } = new URL(url);
    const token = searchParams.get('token')!;
    const ask = (path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
      new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: Number(port), path, method: o.method ?? 'GET', headers: { host: `127.0.0.1:${port}`, ...o.headers } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
          // An event stream that was let in: its first event is enough.
          if (res.headers['content-type'] === 'text/event-stream') res.once('data', () => req.destroy());
        });
        req.once('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve({ status: 200, body: '', headers: {} }) : reject(e)));
        req.end(o.body);
      });
    const bearer = { authorization: `Bearer ${token}` };
    const json = { ...bearer, 'content-type': 'application/json' };
    assert.equal((await ask('/api/topology')).status, 401);
    assert.equal((await ask('/')).status, 401, 'the page itself');
    assert.equal((await ask('/api/topology', { headers: { authorization: 'Bearer guess' } })).status, 403);
    assert.equal((await ask('/api/topology', { headers: bearer })).status, 200);
    const cookie = (await ask(`/?token=${token}`)).headers['set-cookie'] as string[];
    assert.match(cookie[0]!, /HttpOnly; SameSite=Strict/);
    assert.equal((await ask('/api/topology', { headers: { cookie: cookie[0]!.split(';')[0]! } })).status, 200, 'the cookie the URL gave');
    const rebound = await ask('/api/topology', { headers: { ...bearer, host: `attacker.example:${port}` } });
    assert.equal(rebound.status, 403);
    assert.match(rebound.body, /DNS rebinding/);
    const trace = JSON.stringify({ from: 'pod/client', to: 'service/web' });
    assert.equal((await ask('/api/trace', { method: 'POST', headers: { ...json, origin: 'http://attacker.example' }, body: trace })).status, 403);
    assert.equal((await ask('/api/trace', { method: 'POST', headers: { ...json, origin: `http://127.0.0.1:${Number(port) + 1}` }, body: trace })).status, 403);
    assert.equal((await ask('/api/events', { headers: { ...bearer, origin: 'http://attacker.example' } })).status, 403, 'the event stream');
    assert.equal((await ask('/api/trace', { method: 'POST', headers: { ...bearer, 'content-type': 'text/plain' }, body: trace })).status, 415, 'a form post a page could send without asking');
    const bad = await ask('/api/trace', { method: 'POST', headers: json, body: '{"from": "pod/client", ' });
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error, /not JSON/);
    const field = await ask('/api/trace', { method: 'POST', headers: json, body: '{"from": "pod/client", "to": "service/web", "port": "http"}' });
    assert.equal(field.status, 400);
    assert.match(JSON.parse(field.body).error, /port "http": a port number/);
    const unknown = await ask('/api/trace', { method: 'POST', headers: json, body: '{"from": "pod/nobody", "to": "service/web"}' });
    assert.equal(unknown.status, 400, `a pod that does not exist: ${unknown.body}`);
  });

  test('readable in a narrow window, and no console errors', async () => {
    await page.setViewportSize({ width: 480, height: 900 });
    const graph = (await page.locator('#graph').boundingBox())!;
    const aside = (await page.locator('aside').boundingBox())!;
    assert.ok(aside.y >= graph.y + graph.height - 1, 'the side panel goes below the graph');
    assert.ok(aside.width <= 480 && graph.width <= 480);
    await settled();
    await page.screenshot({ path: join(ARTIFACTS, 'ui-narrow.png'), fullPage: true });
    assert.deepEqual(errors, []);
  });
});
