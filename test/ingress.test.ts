// Ingress on a running cluster, requests from the `external` namespace to the node IPs:
// status, path and host rules, named ports, default backend, 404/503, spread over every
// endpoint, forwarding headers, TLS by SNI with certificates made here, the HTTP->HTTPS
// redirect, upgrades, classes, bad input reported while the rest works, metrics, a
// configuration change under an in-flight request, a killed controller restarted, and a
// rolling replacement of the backend under steady load with no failed request.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Ingress, Pod } from '../src/api/types.ts';
import { makeCa, makeLeaf, tlsSecretYaml, type KeyFormat, type KeyType } from './certificates.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor } from './kube.ts';

const NODE_IPS = ['172.18.0.11', '172.18.0.12'];

/** A backend with what the built-in workloads lack: upgrades (echoing), a slow path, its own name. */
const BACKEND_SCRIPT = `
const http = require('node:http');
const name = require('node:os').hostname() + ':' + process.pid;
const s = http.createServer((q, r) => {
  if (q.url.startsWith('/slow')) return setTimeout(() => r.end('slow done'), 1500);
  if (q.url.startsWith('/chunked')) { r.write('part1'); return setTimeout(() => r.end('part2'), 50); }
  if (q.url.startsWith('/echo-url')) return r.end('url ' + q.url + (q.url.endsWith('?host') ? ' host ' + q.headers.host : ''));
  let n = 0;
  q.on('data', (d) => (n += d.length));
  q.on('end', () => r.end(q.method === 'POST' ? 'got ' + n + ' bytes' : 'plain ' + name));
});
s.on('upgrade', (q, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: ' + q.headers.upgrade + '\\r\\nConnection: Upgrade\\r\\n\\r\\n');
  sock.on('data', (d) => sock.write('echo:' + d));
});
s.listen(9000);
`;

const MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
      - name: hello
        image: hello
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec:
  selector: {app: other}
  ports: [{port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ws}
spec:
  replicas: 1
  selector: {matchLabels: {app: ws}}
  template:
    metadata: {labels: {app: ws}}
    spec:
      containers:
      - name: ws
        image: node
        command: [${JSON.stringify(process.execPath)}, -e, ${JSON.stringify(BACKEND_SCRIPT)}]
        ports: [{containerPort: 9000, name: ws}]
---
apiVersion: v1
kind: Service
metadata: {name: ws}
spec:
  selector: {app: ws}
  ports: [{name: ws, port: 80, targetPort: ws}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: main}
spec:
  defaultBackend: {service: {name: other, port: {number: 8000}}}
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: other, port: {number: 8000}}}}
      - {path: /aaa/bbb, pathType: Prefix, backend: {service: {name: other, port: {number: 8000}}}}
      - {path: /empty, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}
  - host: "*.wild.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: other, port: {number: 8000}}}}
  - host: ws.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ws, port: {name: ws}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shared}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /shared, pathType: Prefix, backend: {service: {name: other, port: {number: 8000}}}}
`;

describe('Ingress', { skip: NOT_ROOT }, () => {
  const cluster = `kwi${process.pid % 100000}`;
  let stateDir: string;
  let certDir: string;
  let kube: Kube;
  let webPods: Pod[];

  /** curl from outside the cluster; returns "STATUS BODY". */
  const curl = async (url: string, ...args: string[]): Promise<string> => {
    const r = await kube.run(['exec', '--external', '--', 'curl', '-s', '-m', '5', '-w', ' %{http_code}', ...args, url]);
    const out = r.stdout;
    const i = out.lastIndexOf(' ');
    return `${out.slice(i + 1)} ${out.slice(0, i)}`;
  };
  const get = (host: string, path: string, node = 0, ...args: string[]) => curl(`http://${NODE_IPS[node]}${path}`, '-H', `Host: ${host}`, ...args);
  const cert = (name: string, san: string) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`, '-keyout', join(certDir, `${name}.key`), '-out', join(certDir, `${name}.crt`)], { stdio: 'ignore' });
    const b64 = (f: string) => readFileSync(join(certDir, f)).toString('base64');
    return `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}}\ntype: kubernetes.io/tls\ndata: {tls.crt: ${b64(`${name}.crt`)}, tls.key: ${b64(`${name}.key`)}}\n`;
  };
  const ingressEvents = async (name: string) => {
    const ing = await kube.json<Ingress>('get', 'ingress', name);
    return (await kube.json<{ items: Array<{ reason: string; message: string }> }>('get', 'events', '--field-selector', `involvedObject.uid=${ing.metadata.uid}`)).items;
  };

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-ing-'));
    certDir = mkdtempSync(join(tmpdir(), 'kwt-ingcert-'));
    kube = new Kube(cluster, stateDir);
    // Two workers per controller (the default is one per two CPUs): the primary, its shared
    // ports and summed metrics are under test too.
    await kube.ok('up', '--ingress-workers', '2');
    await kube.apply(MANIFEST);
    for (const d of ['web', 'other', 'ws']) await kube.ok('rollout', 'status', `deployment/${d}`, '--timeout', '30s');
    webPods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
    await waitFor('the ingress to serve web.example.com', async () => (await get('web.example.com', '/hostname')).startsWith('200 '));
  });
  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(certDir, { recursive: true, force: true });
  });

  test('each node runs a controller; the Ingress is published with every node IP and the default class', async () => {
    const ing = await waitFor('status', async () => {
      const i = await kube.json<Ingress>('get', 'ingress', 'main');
      return i.status?.loadBalancer?.ingress?.length ? i : undefined;
    });
    assert.deepEqual(ing.status!.loadBalancer!.ingress, NODE_IPS.map((ip) => ({ ip })));
    assert.equal(ing.spec.ingressClassName, 'kubewire', 'the default IngressClass was given at creation');
    assert.match(await kube.ok('get', 'ingress'), /^main\s+kubewire\s+web\.example\.com,\*\.wild\.example\.com,ws\.example\.com\s+172\.18\.0\.11,172\.18\.0\.12\s+80\s/m);
    assert.match(await kube.ok('get', 'ingressclass'), /^kubewire\s+kubewire\.dev\/ingress-controller\s/m);
  });

  test('paths and hosts as the specification says, at every node; several Ingresses share a host', async () => {
    // Independent requests: all at once, each answer checked against its own expectation.
    const checks: Array<[Promise<string>, RegExp, string]> = [0, 1].flatMap((node): Array<[Promise<string>, RegExp, string]> => [
      [get('web.example.com', '/hostname', node), /^200 web-/, 'Prefix / (netexec answers its pod name)'],
      [get('web.example.com', '/exact', node), /^200 pod: other-/, 'Exact'],
      [get('web.example.com', '/exact/', node), /^404 /, 'Exact /exact does not match /exact/: it falls to Prefix / (netexec: no such page)'],
      [get('web.example.com', '/aaa/bbb/ccc', node), /^200 pod: other-/, 'Prefix matches a subpath'],
      [get('web.example.com', '/aaa/bbbxyz', node), /^404 /, 'Prefix is element-wise: /aaa/bbbxyz is not under /aaa/bbb (falls to netexec)'],
      [get('web.example.com', '/shared/x', node), /^200 pod: other-/, 'a path from the second Ingress on the same host'],
      [get('a.wild.example.com', '/', node), /^200 pod: other-/, 'wildcard host'],
      [get('WEB.example.com:80', '/hostname', node), /^200 web-/, 'host matched without case and port'],
    ]);
    checks.push([get('a.b.wild.example.com', '/'), /^200 pod: other-/, 'a wildcard covers one label only: this goes to the default backend']);
    checks.push([get('nothing.example.org', '/'), /^200 pod: other-/, 'no rule: the default backend']);
    const answers = await Promise.all(checks.map(([answer]) => answer));
    for (const [i, [, expected, what]] of checks.entries()) assert.match(answers[i]!, expected, what);
  });

  test('404 without a matching rule and no default backend; 503 for a backend without endpoints', async () => {
    await kube.apply(MANIFEST.replace('  defaultBackend: {service: {name: other, port: {number: 8000}}}\n', ''));
    await waitFor('the default backend to go', async () => (await get('nothing.example.org', '/')).startsWith('404 '));
    assert.match(await get('nothing.example.org', '/'), /^404 .*404 Not Found/s);
    assert.match(await get('web.example.com', '/empty'), /^503 .*503 Service Temporarily Unavailable/s);
    await kube.apply(MANIFEST);
    await waitFor('the default backend back', async () => (await get('nothing.example.org', '/')).startsWith('200 '));
  });

  test('requests spread over every ready endpoint', async () => {
    const out = await kube.ok('exec', '--external', '--', 'sh', '-c', `for i in $(seq 30); do curl -s -m 2 -H 'Host: web.example.com' http://${NODE_IPS[0]}/hostname; echo; done`);
    const seen = new Set(out.split('\n').filter(Boolean));
    assert.deepEqual([...seen].sort(), webPods.map((p) => p.metadata.name).sort());
  });

  test("forwarding headers: the client's address, not what the client claims", async () => {
    const header = (key: string, ...args: string[]) => get('web.example.com', `/header?key=${key}`, 0, ...args);
    // Independent requests: all at once, each answer checked against its own expectation.
    const checks: Array<[Promise<string>, string | RegExp, string?]> = [
      [header('X-Forwarded-For', '-H', 'X-Forwarded-For: 6.6.6.6'), '200 172.18.0.200'],
      [header('X-Real-IP', '-H', 'X-Real-IP: 6.6.6.6'), '200 172.18.0.200'],
      [header('X-Original-Forwarded-For', '-H', 'X-Forwarded-For: 6.6.6.6'), '200 6.6.6.6'],
      [header('X-Forwarded-Proto', '-H', 'X-Forwarded-Proto: https'), '200 http'],
      [header('X-Forwarded-Host'), '200 web.example.com'],
      [header('X-Forwarded-Port'), '200 80'],
      [header('X-Request-ID'), /^200 [0-9a-f]{32}$/],
      [header('Host'), '200 web.example.com'],
      [header('Proxy', '-H', 'Proxy: http://evil'), '200 ', 'httpoxy: never forwarded'],
      // A header the client lists in Connection is hop-by-hop and dropped, but never one of ours.
      [header('X-Forwarded-For', '-H', 'Connection: close, X-Forwarded-For'), '200 172.18.0.200'],
      [header('X-Custom', '-H', 'Connection: X-Custom', '-H', 'X-Custom: 1'), '200 '],
    ];
    const answers = await Promise.all(checks.map(([answer]) => answer));
    for (const [i, [, expected, what]] of checks.entries()) {
      if (typeof expected === 'string') assert.equal(answers[i], expected, what);
      else assert.match(answers[i]!, expected, what);
    }
  });

  test('TLS: certificates chosen by SNI (wildcards too), the default one otherwise, and HTTP redirected to HTTPS', async () => {
    await kube.apply(`${cert('web', 'DNS:web.example.com')}---\n${cert('wild', 'DNS:*.wild.example.com')}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: secure}
spec:
  tls:
  - {hosts: [secure.example.com], secretName: web}
  - {hosts: ["*.wild.example.com"], secretName: wild}
  rules:
  - host: secure.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
`);
    // The web certificate names web.example.com, not secure.example.com: served anyway (the user chose it), reported.
    const served = async (name: string) => {
      const out = await kube.ok('exec', '--external', '--', 'sh', '-c', `openssl s_client -connect ${NODE_IPS[1]}:443 -servername ${name} </dev/null 2>/dev/null | openssl x509 -noout -subject`);
      return out.trim();
    };
    await waitFor('the secure Ingress', async () => (await served('secure.example.com')).includes('CN = web'));
    assert.match(await served('a.wild.example.com'), /CN = wild/);
    assert.match(await served('unknown.example.com'), /Kubernetes Ingress Controller Fake Certificate/);
    // Verified end to end against the wildcard certificate the test made.
    writeFileSync(join(certDir, 'ca.pem'), readFileSync(join(certDir, 'wild.crt')));
    const https = await curl('https://x.wild.example.com/', '--cacert', join(certDir, 'ca.pem'), '--resolve', `x.wild.example.com:443:${NODE_IPS[0]}`);
    assert.match(https, /^200 pod: other-/);
    assert.equal((await curl('https://secure.example.com/header?key=X-Forwarded-Proto', '-k', '--resolve', `secure.example.com:443:${NODE_IPS[0]}`)), '200 https');
    // HTTP/2 when the client offers it (ALPN h2, as ingress-nginx), HTTP/1.1 otherwise; the endpoint gets HTTP/1.1 with a Host either way.
    const version = (...args: string[]) => kube.ok('exec', '--external', '--', 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args, '--resolve', `secure.example.com:443:${NODE_IPS[0]}`, 'https://secure.example.com/hostname');
    assert.equal(await version('--http2'), '2 200');
    assert.equal(await version('--http1.1'), '1.1 200');
    assert.equal(await curl('https://secure.example.com/header?key=Host', '-k', '--http2', '--resolve', `secure.example.com:443:${NODE_IPS[0]}`), '200 secure.example.com');
    assert.equal(await curl('https://ws.example.com/up', '-k', '--http2', '--resolve', `ws.example.com:443:${NODE_IPS[0]}`, '-d', 'over h2'), '200 got 7 bytes');
    const redirect = await kube.ok('exec', '--external', '--', 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', 'Host: secure.example.com', `http://${NODE_IPS[0]}/a?b=1`);
    assert.equal(redirect, '308 https://secure.example.com/a?b=1');
    const events = await ingressEvents('secure');
    assert.ok(events.some((e) => e.reason === 'TLSHostMismatch' && /is for web\.example\.com, not secure\.example\.com/.test(e.message)), JSON.stringify(events));
  });

  test('TLS: RSA, EC and Ed25519 certificates with their chains, verified by curl against the CA over HTTP/1.1 and HTTP/2; a certificate that cannot serve a handshake is reported', async () => {
    const ca = makeCa(mkdtempSync(join(certDir, 'ca-')));
    const kinds: Array<[KeyType, KeyFormat]> = [['rsa2048', 'pkcs1'], ['rsa3072', 'pkcs8'], ['rsa4096', 'pkcs8'], ['p256', 'sec1'], ['p384', 'pkcs8'], ['ed25519', 'pkcs8']];
    const host = (type: string) => `${type}.tls.example.com`;
    const secrets: string[] = [];
    for (const [type, format] of kinds) {
      const leaf = makeLeaf(ca, type, host(type), type, format);
      if (type !== 'rsa2048') secrets.push(tlsSecretYaml(`${type}-tls`, leaf.crt, leaf.key));
      else {
        // As the issue's user did, from files: kubewire create secret tls, as kubectl's.
        writeFileSync(join(ca.dir, 'rsa2048-chain.pem'), leaf.crt);
        await kube.ok('create', 'secret', 'tls', 'rsa2048-tls', '--cert', join(ca.dir, 'rsa2048-chain.pem'), '--key', join(ca.dir, 'rsa2048.key'));
      }
    }
    // A DSA certificate loads, but no TLS 1.2 or 1.3 client can be served with it.
    execFileSync('openssl', ['dsaparam', '-genkey', '-out', join(ca.dir, 'dsa.key'), '2048'], { stdio: 'ignore' });
    const dsa = execFileSync('openssl', ['req', '-x509', '-new', '-key', join(ca.dir, 'dsa.key'), '-subj', `/CN=${host('dsa')}`, '-days', '2']).toString();
    secrets.push(tlsSecretYaml('dsa-tls', dsa, readFileSync(join(ca.dir, 'dsa.key'), 'utf8')));
    const types = [...kinds.map(([t]) => t), 'dsa'];
    await kube.apply(`${secrets.join('---\n')}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: keys}
spec:
  tls:
${types.map((t) => `  - {hosts: [${host(t)}], secretName: ${t}-tls}`).join('\n')}
  rules:
${types.map((t) => `  - host: ${host(t)}\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}`).join('\n')}
`);
    /** curl trusting the test's root CA alone: the chain must be sent in order and name the host. */
    const verified = (type: string, version: string, node = 0) =>
      kube.run(['exec', '--external', '--', 'curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', version, '--cacert', ca.caFile, '--resolve', `${host(type)}:443:${NODE_IPS[node]}`, `https://${host(type)}/hostname`]);
    await waitFor('the keys Ingress over TLS', async () => (await verified('ed25519', '--http1.1')).stdout === '1.1 200');
    for (const [type] of kinds) {
      for (const node of [0, 1]) {
        assert.equal((await verified(type, '--http1.1', node)).stdout, '1.1 200', `${type} over HTTP/1.1 at node ${node + 1}`);
        assert.equal((await verified(type, '--http2', node)).stdout, '2 200', `${type} over HTTP/2 at node ${node + 1}`);
      }
    }
    // A client that prefers RSA signatures still gets the EC certificate of the name it asked for (the default one is RSA).
    const subject = async (type: string, ...args: string[]) => (await kube.ok('exec', '--external', '--', 'sh', '-c', `openssl s_client -connect ${NODE_IPS[0]}:443 -servername ${host(type)} ${args.join(' ')} </dev/null 2>/dev/null | openssl x509 -noout -subject`)).trim();
    assert.equal(await subject('p256', '-sigalgs', 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256:ecdsa_secp256r1_sha256'), `subject=CN = ${host('p256')}`);
    assert.equal(await subject('rsa2048', '-sigalgs', 'ecdsa_secp256r1_sha256:ed25519:rsa_pss_rsae_sha256'), `subject=CN = ${host('rsa2048')}`);
    assert.match(await subject('dsa'), /Kubernetes Ingress Controller Fake Certificate/, 'the unusable certificate is replaced by the default one');
    const events = await waitFor('the DSA certificate reported', async () => {
      const e = await ingressEvents('keys');
      return e.some((x) => x.reason === 'BadTLSSecret') ? e : undefined;
    });
    const bad = events.filter((e) => e.reason === 'BadTLSSecret' || e.reason === 'TLSCertificateWarning');
    assert.equal(bad.length, 1, JSON.stringify(bad));
    assert.match(bad[0]!.message, /secret default\/dsa-tls: the certificate cannot be used for a TLS handshake \(TLS 1\.3 clients: no suitable signature algorithm; TLS 1\.2 clients: no shared cipher\): hosts dsa\.tls\.example\.com get the default certificate/);
    const log = readFileSync(join(stateDir, cluster, 'ingress', `${cluster}-node-1.log`), 'utf8');
    assert.match(log, /Ingress default\/keys: spec\.tls: secret default\/dsa-tls: the certificate cannot be used for a TLS handshake/);
    await kube.ok('delete', 'ingress', 'keys');
  });

  test("the route is chosen on the normalised path, as nginx's location: dot segments cannot slip past a rule, on every data path; absolute form; 400s", async () => {
    await kube.apply(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: sec-public}
spec:
  rules: [{host: sec.example, http: {paths: [{path: /echo-url/public, pathType: Prefix, backend: {service: {name: ws, port: {number: 80}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sec-admin
  annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: no-such-secret}
spec:
  rules: [{host: sec.example, http: {paths: [{path: /echo-url/admin, pathType: Prefix, backend: {service: {name: ws, port: {number: 80}}}}]}}]
`);
    const at = ['--path-as-is', '--resolve', `sec.example:80:${NODE_IPS[0]}`, '--resolve', `sec.example:443:${NODE_IPS[0]}`];
    await waitFor('sec.example served', async () => (await curl('http://sec.example/echo-url/public/a', ...at)).startsWith('200 '));
    assert.equal(await curl('http://sec.example/echo-url/public/a', ...at), '200 url /echo-url/public/a');
    // /admin's rule (a missing auth Secret: 503 for everyone) applies however the path is spelt, on the
    // fast path, through Node's HTTP server (HTTP/1.0) and over HTTP/2.
    for (const path of ['/echo-url/public/../admin', '/echo-url/public/%2e%2e/admin', '/echo-url/public//../admin', '/echo-url/public/%2E%2e/admin/x']) {
      assert.match(await curl(`http://sec.example${path}`, ...at), /^503 /, `${path} (fast path)`);
      assert.match(await curl(`http://sec.example${path}`, ...at, '-0'), /^503 /, `${path} (HTTP/1.0, Node's server)`);
      assert.match(await curl(`https://sec.example${path}`, ...at, '-k', '--http2'), /^503 /, `${path} (HTTP/2)`);
    }
    assert.equal(await curl('http://sec.example/echo-url/x/../public/b', ...at), '200 url /echo-url/x/../public/b', "routed as /echo-url/public/b; the endpoint gets the target as sent (nginx's $request_uri)");
    for (const path of ['/../../etc/passwd', '/echo-url/public/../../../x', '/echo-url/public/%00']) {
      assert.match(await curl(`http://sec.example${path}`, ...at), /^400 /, path);
      assert.match(await curl(`http://sec.example${path}`, ...at, '-0'), /^400 /, `${path}, HTTP/1.0`);
    }
    assert.match(await curl('http://sec.example./echo-url/public/c', '--path-as-is', '--resolve', `sec.example.:80:${NODE_IPS[0]}`), /^200 url \/echo-url\/public\/c/, 'a trailing dot is dropped');
    // Absolute form: the request line's authority wins over Host, and the endpoint gets the origin form and that authority as Host.
    assert.equal(await curl(`http://${NODE_IPS[1]}/`, '--request-target', 'http://sec.example/echo-url/public/d?host', '-H', 'Host: web.example.com'), '200 url /echo-url/public/d?host host sec.example');
    assert.match(await curl(`http://${NODE_IPS[1]}/`, '--request-target', 'http://sec.example/echo-url/public/../admin', '-H', 'Host: web.example.com'), /^503 /);
    // Two Hosts: 400 and the connection closed, as nginx ("client sent duplicate host header").
    const raw = await kube.ok('exec', '--external', '--', 'sh', '-c', `printf 'GET /echo-url/public/e HTTP/1.1\\r\\nHost: sec.example\\r\\nHost: web.example.com\\r\\n\\r\\n' | nc -N -w 3 ${NODE_IPS[0]} 80`);
    assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
    await kube.ok('delete', 'ingress', 'sec-public', 'sec-admin');
  });

  test('bare LF line endings are read as nginx reads them (answered, not held for 75 s); a bare CR is a 400 at once', async () => {
    // No -N: a client that half-closes would lose the proxied answer (the proxy ends the connection at its FIN).
    const send = (text: string) => kube.ok('exec', '--external', '--', 'sh', '-c', `printf '${text}' | nc -w 3 ${NODE_IPS[0]} 80`);
    const started = Date.now();
    const lf = await send('GET /hostname HTTP/1.1\\nHost: web.example.com\\nConnection: close\\n\\n');
    assert.match(lf, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nweb-/, 'the endpoint answered (it got the head in CRLF)');
    const mixed = await send('GET /hostname HTTP/1.1\\r\\nHost: web.example.com\\nConnection: close\\r\\n\\n');
    assert.match(mixed, /^HTTP\/1\.1 200 OK\r\n[^]*web-/);
    for (const cr of ['GET /hostname HTTP/1.1\\rHost: web.example.com\\r\\r', 'GET /hostname HTTP/1.1\\r\\nHost: web.example.com\\rX: y\\r\\n\\r\\n']) assert.match(await send(cr), /^HTTP\/1\.1 400 Bad Request\r\n/, cr);
    assert.ok(Date.now() - started < 10_000, `answered at once (${Date.now() - started} ms for four requests)`);
  });

  test('websocket upgrades are tunnelled both ways', async () => {
    const client = `
const s = require('node:net').connect(80, ${JSON.stringify(NODE_IPS[1])}, () => s.write('GET /chat HTTP/1.1\\r\\nHost: ws.example.com\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n\\r\\n'));
let buf = '';
s.on('data', (d) => {
  buf += d;
  if (buf.includes('\\r\\n\\r\\n') && !buf.includes('echo:')) { if (!s.sent) { s.sent = true; s.write('ping'); } }
  if (buf.includes('echo:ping')) { console.log(buf.split('\\r\\n')[0] + ' | ' + buf.slice(buf.indexOf('echo:'))); process.exit(0); }
});
setTimeout(() => { console.log('timeout: ' + buf); process.exit(1); }, 4000);`;
    const out = await kube.ok('exec', '--external', '--', process.execPath, '-e', client);
    assert.equal(out.trim(), 'HTTP/1.1 101 Switching Protocols | echo:ping');
  });

  test('bodies both ways: Content-Length and chunked uploads (HTTP and HTTPS), chunked responses, HEAD, HTTP/1.0, 413', async () => {
    const at = ['--resolve', `ws.example.com:80:${NODE_IPS[0]}`, '--resolve', `ws.example.com:443:${NODE_IPS[0]}`, '-k'];
    assert.equal(await curl('http://ws.example.com/up', ...at, '-d', 'hello'), '200 got 5 bytes');
    // Chunked uploads are not the fast path's: the connection goes to Node's HTTP server, on either port.
    assert.equal(await curl('http://ws.example.com/up', ...at, '-H', 'Transfer-Encoding: chunked', '-d', 'hello world'), '200 got 11 bytes');
    assert.equal(await curl('https://ws.example.com/up', ...at, '-H', 'Transfer-Encoding: chunked', '-d', 'hello world'), '200 got 11 bytes');
    assert.equal(await curl('http://ws.example.com/chunked', ...at), '200 part1part2');
    assert.equal(await curl('https://ws.example.com/chunked', ...at), '200 part1part2');
    assert.match(await curl('http://ws.example.com/', ...at, '-0'), /^200 plain /, 'HTTP/1.0, through Node\'s HTTP server');
    const head = await kube.ok('exec', '--external', '--', 'curl', '-s', '-I', '-m', '5', '--resolve', `ws.example.com:80:${NODE_IPS[0]}`, 'http://ws.example.com/', 'http://ws.example.com/');
    assert.equal(head.match(/^HTTP\/1\.1 200/gm)?.length, 2, 'two HEADs on one connection: no body awaited after the first');
    writeFileSync(join(certDir, 'big'), Buffer.alloc(2 * 1024 * 1024, 97));
    const big = await kube.ok('exec', '--external', '--', 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '5', '--resolve', `ws.example.com:80:${NODE_IPS[0]}`, '--data-binary', `@${join(certDir, 'big')}`, 'http://ws.example.com/up');
    assert.equal(big, '413', 'over the 1 MiB default body limit');
  });

  test('rewrite-target and use-regex as ingress-nginx: the path a regex, the URL rewritten (fast path and Node\'s server)', async () => {
    await kube.apply(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /echo-url/$2}
spec:
  rules:
  - host: rewrite.example.com
    http:
      paths:
      - {path: /app(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: ws, port: {name: ws}}}}
`);
    const at = ['--resolve', `rewrite.example.com:80:${NODE_IPS[1]}`];
    await waitFor('the rewriting Ingress served', async () => (await curl('http://rewrite.example.com/app/x', ...at)).startsWith('200 '), 10_000);
    assert.equal(await curl('http://rewrite.example.com/app/x/y?z=1', ...at), '200 url /echo-url/x/y?z=1');
    assert.equal(await curl('http://rewrite.example.com/APP', ...at), '200 url /echo-url/', 'case-insensitive, as nginx\'s ~*');
    assert.equal(await curl('http://rewrite.example.com/app/old', ...at, '-0'), '200 url /echo-url/old', 'HTTP/1.0, through Node\'s HTTP server');
    assert.match(await curl('http://rewrite.example.com/application', ...at), /^200 pod: other-/, '(/|$) after /app: no match, so the default backend');
    await kube.ok('delete', 'ingress', 'rewrite');
  });

  test("the proxy's own answers from annotations: app-root, redirects, force-ssl-redirect, allowlist", async () => {
    const one = (name: string, annotations: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, annotations: {${annotations}}}
spec:
  rules:
  - host: ${name}.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}
`;
    const a = 'nginx.ingress.kubernetes.io/';
    await kube.apply([
      one('approot', `${a}app-root: /hostname`),
      one('moved', `${a}permanent-redirect: "https://example.org/new"`),
      one('forced', `${a}force-ssl-redirect: "true"`),
      one('locked', `${a}allowlist-source-range: "10.0.0.0/8"`),
      one('open', `${a}allowlist-source-range: "10.0.0.0/8, 172.18.0.0/16"`),
    ].join('---\n'));
    const ask = async (name: string, path = '/') => (await kube.ok('exec', '--external', '--', 'curl', '-s', '-o', '/dev/null', '-m', '5', '-w', '%{http_code} %{redirect_url}', '-H', `Host: ${name}.example.com`, `http://${NODE_IPS[0]}${path}`)).trim();
    await waitFor('the annotated Ingresses served', async () => (await ask('open', '/hostname')) === '200');
    assert.equal(await ask('approot'), '302 http://approot.example.com/hostname');
    assert.equal(await ask('approot', '/hostname'), '200');
    assert.equal(await ask('moved', '/x'), '301 https://example.org/new');
    assert.equal(await ask('forced', '/y?z=1'), '308 https://forced.example.com/y?z=1');
    assert.equal(await ask('locked', '/hostname'), '403', 'the external client (172.18.0.200) is not in 10.0.0.0/8');
    await kube.ok('delete', 'ingress', 'approot', 'moved', 'forced', 'locked', 'open');
  });

  test('backend-protocol HTTPS: endpoints spoken to over TLS (fast path and Node\'s server); without it, 502', async () => {
    cert('secure-backend', 'DNS:secure');
    const key = join(certDir, 'secure-backend.key');
    const crt = join(certDir, 'secure-backend.crt');
    const server = `const fs = require('node:fs'); require('node:https').createServer({ key: fs.readFileSync(${JSON.stringify(key)}), cert: fs.readFileSync(${JSON.stringify(crt)}) }, (q, r) => r.end('tls ' + q.socket.encrypted + ' ' + q.url)).listen(8443);`;
    const ingress = (name: string, path: string, annotations: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, annotations: {${annotations}}}
spec:
  rules:
  - host: secure.example.com
    http: {paths: [{path: ${path}, pathType: Prefix, backend: {service: {name: secure, port: {number: 443}}}}]}
`;
    await kube.apply(`apiVersion: apps/v1
kind: Deployment
metadata: {name: secure}
spec:
  replicas: 1
  selector: {matchLabels: {app: secure}}
  template:
    metadata: {labels: {app: secure}}
    spec:
      containers:
      - {name: https, image: node, command: [${JSON.stringify(process.execPath)}, -e, ${JSON.stringify(server)}], ports: [{containerPort: 8443}]}
---
apiVersion: v1
kind: Service
metadata: {name: secure}
spec:
  selector: {app: secure}
  ports: [{port: 443, targetPort: 8443}]
---
${ingress('secure', '/tls', 'nginx.ingress.kubernetes.io/backend-protocol: HTTPS')}---
${ingress('insecure', '/plain', '')}`);
    await kube.ok('rollout', 'status', 'deployment/secure', '--timeout', '30s');
    const at = ['--resolve', `secure.example.com:80:${NODE_IPS[0]}`];
    await waitFor('the HTTPS backend served', async () => (await curl('http://secure.example.com/tls/a', ...at)).startsWith('200 '), 10_000);
    assert.equal(await curl('http://secure.example.com/tls/a?b=1', ...at), '200 tls true /tls/a?b=1');
    assert.equal(await curl('http://secure.example.com/tls/old', ...at, '-0'), '200 tls true /tls/old', 'HTTP/1.0, through Node\'s HTTP server and undici');
    assert.match(await curl('http://secure.example.com/plain', ...at), /^502 /, 'plain HTTP to a TLS endpoint');
    await kube.ok('delete', 'ingress', 'secure', 'insecure');
    await kube.ok('delete', 'deployment', 'secure');
    await kube.ok('delete', 'service', 'secure');
  });

  test('a canary Ingress takes the requests its header asks for, and its weight (fast path and Node\'s server)', async () => {
    const ingress = (name: string, service: string, port: string, annotations: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, annotations: {${annotations}}}
spec:
  rules:
  - host: canary.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: ${service}, port: {${port}}}}}]}
`;
    const a = 'nginx.ingress.kubernetes.io/';
    await kube.apply(`${ingress('stable', 'web', 'name: http', '')}---\n${ingress('preview', 'other', 'number: 8000', `${a}canary: "true", ${a}canary-by-header: X-Canary, ${a}canary-weight: "0"`)}`);
    const at = ['--resolve', `canary.example.com:80:${NODE_IPS[0]}`];
    await waitFor('the canary joined', async () => (await curl('http://canary.example.com/hostname', ...at, '-H', 'X-Canary: always')).startsWith('200 pod: other-'), 10_000);
    for (let i = 0; i < 5; i++) assert.match(await curl('http://canary.example.com/hostname', ...at), /^200 web-/, 'weight 0: no request by chance');
    assert.match(await curl('http://canary.example.com/hostname', ...at, '-H', 'X-Canary: never'), /^200 web-/);
    assert.match(await curl('http://canary.example.com/hostname', ...at, '-0', '-H', 'X-Canary: always'), /^200 pod: other-/, 'HTTP/1.0, through Node\'s HTTP server');
    await kube.apply(ingress('preview', 'other', 'number: 8000', `${a}canary: "true", ${a}canary-weight: "100"`));
    await waitFor('all by weight', async () => (await curl('http://canary.example.com/hostname', ...at)).startsWith('200 pod: other-'), 10_000);
    const log = join(stateDir, cluster, 'ingress', `${cluster}-node-1.access.log`);
    await waitFor('the canary in the access log', async () => readFileSync(log, 'utf8').includes('[default-web-http] [default-other-8000]'));
    await kube.ok('delete', 'ingress', 'stable', 'preview');
  });

  test('sticky sessions by cookie and CORS, as ingress-nginx (fast path and Node\'s server)', async () => {
    const a = 'nginx.ingress.kubernetes.io/';
    await kube.apply(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sticky
  annotations: {${a}affinity: cookie, ${a}session-cookie-name: route, ${a}enable-cors: "true", ${a}cors-allow-origin: "https://app.example.com"}
spec:
  rules:
  - host: sticky.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}
`);
    const at = ['--resolve', `sticky.example.com:80:${NODE_IPS[0]}`];
    await waitFor('the sticky Ingress served', async () => (await curl('http://sticky.example.com/hostname', ...at)).startsWith('200 web-'), 10_000);
    const jar = join(certDir, 'jar');
    const first = await curl('http://sticky.example.com/hostname', ...at, '-c', jar);
    assert.match(readFileSync(jar, 'utf8'), /\troute\t[0-9a-f]{32}$/m, 'a session cookie was set');
    for (const extra of [[], [], ['-0'], []]) assert.equal(await curl('http://sticky.example.com/hostname', ...at, '-b', jar, ...extra), first, 'the same pod every time');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await curl('http://sticky.example.com/hostname', ...at));
    assert.ok(seen.size > 1, 'without the cookie, spread as before');
    const headers = async (...args: string[]) => (await kube.ok('exec', '--external', '--', 'curl', '-s', '-o', '/dev/null', '-D', '-', '-m', '5', ...at, ...args, 'http://sticky.example.com/hostname')).toLowerCase();
    const preflight = await headers('-X', 'OPTIONS', '-H', 'Origin: https://app.example.com');
    assert.match(preflight, /^http\/1\.1 204 /);
    assert.match(preflight, /access-control-allow-origin: https:\/\/app\.example\.com\r\n/);
    assert.match(preflight, /access-control-allow-methods: get, put, post, delete, patch, options\r\n/);
    assert.match(await headers('-H', 'Origin: https://app.example.com'), /^http\/1\.1 200 [\s\S]*access-control-allow-origin: https:\/\/app\.example\.com\r\n/);
    assert.doesNotMatch(await headers('-H', 'Origin: https://evil.example.com'), /access-control-allow-origin/);
    await kube.ok('delete', 'ingress', 'sticky');
  });

  test('basic authentication from an htpasswd Secret (fast path and Node\'s server)', async () => {
    const hash = execFileSync('openssl', ['passwd', '-apr1', 'open sesame']).toString().trim();
    const a = 'nginx.ingress.kubernetes.io/';
    await kube.apply(`apiVersion: v1
kind: Secret
metadata: {name: basic-auth}
stringData: {auth: "alice:${hash}"}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: private
  annotations: {${a}auth-type: basic, ${a}auth-secret: basic-auth, ${a}auth-realm: Staff}
spec:
  rules:
  - host: private.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}
`);
    const at = ['--resolve', `private.example.com:80:${NODE_IPS[1]}`];
    await waitFor('the private Ingress served', async () => (await curl('http://private.example.com/hostname', ...at)).startsWith('401 '), 10_000);
    const challenge = await kube.ok('exec', '--external', '--', 'curl', '-s', '-o', '/dev/null', '-D', '-', '-m', '5', ...at, 'http://private.example.com/hostname');
    assert.match(challenge, /^HTTP\/1\.1 401 Unauthorized\r\n[\s\S]*www-authenticate: Basic realm="Staff"\r\n/i);
    assert.match(await curl('http://private.example.com/hostname', ...at, '-u', 'alice:open sesame'), /^200 web-/);
    assert.match(await curl('http://private.example.com/hostname', ...at, '-0', '-u', 'alice:open sesame'), /^200 web-/, 'HTTP/1.0, through Node\'s HTTP server');
    assert.match(await curl('http://private.example.com/hostname', ...at, '-u', 'alice:wrong'), /^401 /);
    await kube.ok('delete', 'ingress', 'private');
    await kube.ok('delete', 'secret', 'basic-auth');
  });

  test("IngressClasses: another controller's class and the deprecated annotation", async () => {
    await kube.apply(`
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: theirs}
spec:
  ingressClassName: nginx
  rules: [{host: theirs.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: other, port: {number: 8000}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: annotated
  annotations: {kubernetes.io/ingress.class: kubewire}
spec:
  rules: [{host: annotated.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
`);
    await waitFor('the annotated Ingress', async () => (await get('annotated.example.com', '/hostname')).startsWith('200 web-'));
    assert.match(await get('theirs.example.com', '/'), /^200 pod: other-/, 'not ours: the host is unknown here, so the default backend answers');
    const theirs = await kube.json<Ingress>('get', 'ingress', 'theirs');
    assert.equal(theirs.status?.loadBalancer?.ingress?.length ?? 0, 0, 'no status on an Ingress of another class');
  });

  test('bad input: the API refuses invalid paths; the controller reports what it cannot serve and serves the rest', async () => {
    const r = await kube.run(['apply', '-f', '-'], { input: `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: invalid}
spec:
  rules: [{http: {paths: [{path: foo, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}]}}]
` });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /document 0 \(Ingress "invalid"\): spec\.rules\[0\]\.http\.paths\[0\]\.path: Invalid value: "foo": must be an absolute path/);
    await kube.apply(`
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: partly}
spec:
  tls: [{hosts: [partly.example.com], secretName: nosuch-tls}]
  rules:
  - host: partly.example.com
    http:
      paths:
      - {path: /ok, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: "/bad;path", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /noport, pathType: Prefix, backend: {service: {name: web, port: {name: metrics}}}}
      - {path: /nosvc, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}
`);
    await waitFor('the partly valid Ingress', async () => (await curl('https://partly.example.com/hostname', '-k', '--resolve', `partly.example.com:443:${NODE_IPS[0]}`)).startsWith('200 '));
    assert.match(await curl('https://partly.example.com/ok/hostname', '-k', '--resolve', `partly.example.com:443:${NODE_IPS[0]}`), /^404 /, '/ok goes to netexec, which has no /ok/hostname page');
    assert.match(await curl('https://partly.example.com/noport', '-k', '--resolve', `partly.example.com:443:${NODE_IPS[0]}`), /^503 /);
    assert.match(await curl('https://partly.example.com/nosvc', '-k', '--resolve', `partly.example.com:443:${NODE_IPS[0]}`), /^503 /);
    const events = await waitFor('the problems as events', async () => {
      const e = await ingressEvents('partly');
      return e.filter((x) => x.reason !== 'Sync').length >= 4 ? e : undefined;
    });
    const reasons = events.map((e) => e.reason).sort();
    assert.deepEqual(reasons, ['BadTLSSecret', 'InvalidPath', 'PortNotFound', 'ServiceNotFound', 'Sync']);
    const described = await kube.ok('describe', 'ingress', 'partly');
    assert.match(described, /secret default\/nosuch-tls not found: hosts partly\.example\.com get the default certificate/);
    assert.match(described, /\/nosvc \(Prefix\)\s+ghost:80 <error: service default\/ghost not found/);
    assert.match(described, /\/ok \(Prefix\)\s+web:80 \(10\.244\./);
    const log = readFileSync(join(stateDir, cluster, 'ingress', `${cluster}-node-1.log`), 'utf8');
    assert.match(log, /Ingress default\/partly: spec\.rules\[0\]\.http\.paths\[1\]: path "\/bad;path"/);
    assert.match(await get('web.example.com', '/hostname'), /^200 web-/, 'other Ingresses undisturbed');
  });

  test('metrics by ingress, service and status; access log lines in ingress-nginx format', async () => {
    await get('web.example.com', '/hostname');
    const metrics = await kube.ok('exec', '--node', `${cluster}-node-1`, '--', 'curl', '-s', 'localhost:10254/metrics');
    assert.match(metrics, /^kubewire_ingress_requests_total\{namespace="default",ingress="main",service="web",status="200",method="GET",host="web\.example\.com",path="\/"\} \d+/m);
    assert.match(metrics, /^kubewire_ingress_request_duration_seconds_bucket\{le="0\.005",namespace="default",ingress="main"/m);
    assert.match(metrics, /^kubewire_ingress_config_last_reload_successful 1$/m);
    const accessLog = join(stateDir, cluster, 'ingress', `${cluster}-node-1.access.log`);
    const line = await waitFor('an access log line', async () => existsSync(accessLog) && readFileSync(accessLog, 'utf8').split('\n').find((l) => l.includes('GET /hostname')));
    assert.match(line, /^172\.18\.0\.200 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/hostname HTTP\/1\.1" 200 \d+ "-" "curl\/[\d.]+" \d+ \d+\.\d{3} \[default-web-http\] \[\] 10\.244\.\d+\.\d+:8080 - \d+\.\d{3} 200 [0-9a-f]{32}$/);
  });

  test('a configuration change leaves an in-flight request alone', async () => {
    const slow = curl('http://ws.example.com/slow', '--resolve', `ws.example.com:80:${NODE_IPS[0]}`);
    await new Promise((r) => setTimeout(r, 300));
    await kube.apply(MANIFEST.replace('- {path: /shared,', '- {path: /shared2,'));
    assert.equal(await slow, '200 slow done');
    await waitFor('the change applied', async () => (await get('web.example.com', '/shared2')).startsWith('200 pod: other-'));
  });

  test('a killed controller is started again by the daemon and serves again', async () => {
    const pidFile = join(stateDir, cluster, 'ingress', `${cluster}-node-2.pid`);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor('a new controller', async () => Number(readFileSync(pidFile, 'utf8')) !== pid);
    await waitFor('node 2 serving again', async () => (await get('web.example.com', '/hostname', 1)).startsWith('200 web-'), 10_000);
  });

  test('the controllers outlive a daemon killed with -9, keep serving, and follow changes once it is back', async () => {
    const daemonPid = Number(readFileSync(join(stateDir, cluster, 'daemon.pid'), 'utf8'));
    process.kill(daemonPid, 'SIGKILL');
    await waitFor('the daemon gone', async () => !existsSync(`/proc/${daemonPid}`) || readFileSync(`/proc/${daemonPid}/stat`, 'utf8').includes(') Z'));
    assert.match(await get('web.example.com', '/hostname', 1), /^200 web-/, 'served from the last configuration');
    await kube.ok('up');
    await kube.apply(MANIFEST.replace('- {path: /shared,', '- {path: /shared3,'));
    await waitFor('the change after the restart', async () => (await get('web.example.com', '/shared3')).startsWith('200 pod: other-'), 10_000);
  });

  test('a rolling replacement of the backend under steady load fails no request', async () => {
    const stop = join(certDir, 'stop');
    // Keep-alive clients against both nodes until told to stop (at most 60 s); prints ok/failed counts.
    const load = `
const http = require('node:http');
const fs = require('node:fs');
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
let ok = 0, failed = 0; const errors = {};
const one = (ip) => new Promise((resolve) => {
  const req = http.get({ host: ip, path: '/hostname', headers: { host: 'web.example.com' }, agent, timeout: 5000 }, (res) => {
    res.resume(); res.on('end', () => { if (res.statusCode === 200) ok++; else { failed++; errors[res.statusCode] = (errors[res.statusCode] || 0) + 1; } resolve(); });
  });
  req.on('error', (e) => { failed++; errors[e.code] = (errors[e.code] || 0) + 1; resolve(); });
});
const deadline = Date.now() + 60000;
const worker = async (ip) => { while (!fs.existsSync(${JSON.stringify(stop)}) && Date.now() < deadline) await one(ip); };
Promise.all([${JSON.stringify(NODE_IPS[0])}, ${JSON.stringify(NODE_IPS[1])}, ${JSON.stringify(NODE_IPS[0])}, ${JSON.stringify(NODE_IPS[1])}].map(worker)).then(() => console.log(JSON.stringify({ ok, failed, errors })));`;
    const running = kube.run(['exec', '--external', '--', process.execPath, '-e', load], { timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 500));
    await kube.apply(MANIFEST.replace('args: [netexec, --http-port=8080]', 'args: [netexec, --http-port=8080, --delay-shutdown=0]'));
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    await new Promise((r) => setTimeout(r, 1000)); // the last old pod's endpoint gone from every controller
    writeFileSync(stop, '');
    const result = JSON.parse((await running).stdout) as { ok: number; failed: number; errors: Record<string, number> };
    const now = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items.map((p) => p.metadata.name);
    assert.ok(now.every((n) => !webPods.some((p) => p.metadata.name === n)), 'every pod was replaced');
    assert.ok(result.ok > 100, `steady load: ${JSON.stringify(result)}`);
    assert.equal(result.failed, 0, JSON.stringify(result));
  });
});
