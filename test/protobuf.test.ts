// The protobuf request bodies kubectl's `create` generators and client-go's typed clients send
// (application/vnd.kubernetes.protobuf): the envelope, every kind served, and the types whose
// wire form differs from their JSON (intstr, Quantity, Time, bytes, RawExtension). Bad bodies
// are refused with a reason. The real kubectl's bodies are checked end to end in api-clients.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeObject, encodeObject, protoTypeName, ProtobufError } from '../src/api/protobuf/decode.ts';
import type { KubeObject } from '../src/api/types.ts';

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'cart', namespace: 'shop', labels: { app: 'cart' }, creationTimestamp: '2026-12-06T10:00:00Z', annotations: { note: 'x' } },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: 'cart' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '50%', maxUnavailable: 0 } },
    template: {
      metadata: { labels: { app: 'cart' } },
      spec: {
        containers: [{ name: 'web', image: 'kubewire/echo', ports: [{ containerPort: 8080, protocol: 'TCP' }], resources: { limits: { cpu: '250m', memory: '64Mi' } }, readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 2 } }],
        terminationGracePeriodSeconds: 30,
      },
    },
  },
} as unknown as KubeObject;

test('protobuf: the proto type of each group/version, as generated.proto names it', () => {
  assert.equal(protoTypeName('v1', 'Namespace'), 'k8s.io.api.core.v1.Namespace');
  assert.equal(protoTypeName('apps/v1', 'Deployment'), 'k8s.io.api.apps.v1.Deployment');
  assert.equal(protoTypeName('networking.k8s.io/v1', 'Ingress'), 'k8s.io.api.networking.v1.Ingress');
  assert.equal(protoTypeName('coordination.k8s.io/v1', 'Lease'), 'k8s.io.api.coordination.v1.Lease');
});

test('protobuf: a Deployment round-trips with intstr, Quantity and Time in their JSON shapes', () => {
  const body = encodeObject(deployment);
  assert.equal(body.subarray(0, 4).toString('latin1'), 'k8s\0');
  assert.deepEqual(decodeObject(body), deployment);
});

test('protobuf: Secret bytes as base64, a Service with a named targetPort, a Namespace, a ConfigMap', () => {
  for (const obj of [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { key: Buffer.from('value\0binary').toString('base64') } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], type: 'NodePort' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 'b' } },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'i' }, spec: { rules: [{ host: 'a.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } },
  ] as unknown as KubeObject[]) {
    assert.deepEqual(decodeObject(encodeObject(obj)), obj, obj.kind);
  }
});

test('protobuf: zero scalars Go always writes are left out as JSON omits them; zero pointers (replicas: 0) are kept', () => {
  const written = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: '', generateName: '' }, spec: { replicas: 0, paused: false, selector: { matchLabels: { a: 'b' } }, template: { spec: { containers: [{ name: 'c', image: 'i', stdin: false }] } } } } as unknown as KubeObject;
  assert.deepEqual(decodeObject(encodeObject(written)), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { replicas: 0, selector: { matchLabels: { a: 'b' } }, template: { spec: { containers: [{ name: 'c', image: 'i' }] } } } });
});

test('protobuf: bad bodies are refused with the reason', () => {
  assert.throws(() => decodeObject(Buffer.from('{"kind":"Namespace"}')), (e: unknown) => e instanceof ProtobufError && /magic/.test(e.message));
  assert.throws(() => decodeObject(Buffer.from('k8s\0\xff\xff\xff\xff\xff', 'latin1')), (e: unknown) => e instanceof ProtobufError && /not valid protobuf/.test(e.message));
  const garbage = Buffer.concat([encodeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } } as KubeObject).subarray(0, 12)]);
  assert.throws(() => decodeObject(garbage), ProtobufError, 'a cut body');
  assert.throws(() => decodeObject(encodeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } } as KubeObject).fill(0, 4)), ProtobufError, 'an empty envelope');
  for (let seed = 1; seed <= 500; seed++) {
    // Random bytes after the magic: refused or read, never anything else thrown.
    const bytes = Buffer.from(Array.from({ length: 4 + (seed % 64) }, (_, i) => (i < 4 ? [0x6b, 0x38, 0x73, 0][i]! : (seed * 7919 + i * 104729) % 256)));
    try {
      decodeObject(bytes);
    } catch (e) {
      assert.ok(e instanceof ProtobufError, `seed ${seed}: ${(e as Error).message}`);
    }
  }
});
