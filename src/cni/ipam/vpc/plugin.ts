// The `vpc` IPAM plugin (vpc mode): a pod's address comes from its node's pool of VPC
// addresses, which the node's ipamd keeps warm (as the AWS VPC CNI's plugin asks its ipamd).
// The plugin only relays the CNI command over ipamd's unix socket and shapes the answer as
// a CNI result: the address with the VPC subnet's mask, the pods' gateway, a default route.

import { request } from 'node:http';
import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { Result } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { validAttachments } from '../../spec/attachments.ts';

/** What the plugin asks ipamd: the CNI command and the attachment it is for. */
export interface IpamdRequest {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
  containerID?: string;
  ifName?: string;
  /** GC: the attachments still valid; every other address goes back to the warm pool. */
  valid?: Array<{ containerID: string; ifName: string }>;
}

/** ipamd's answer: ADD gives `address` (CIDR, the VPC subnet's mask) and `gateway`; a refusal gives `error`. */
export interface IpamdReply {
  address?: string;
  gateway?: string;
  error?: string;
}

function socketOf(args: CmdArgs): string {
  const socket = args.conf.ipam?.socket;
  if (typeof socket !== 'string' || !socket) throw new CniError(ErrorCode.InvalidNetworkConfig, 'field "ipam.socket" is required: the unix socket of the node\'s ipamd');
  return socket;
}

export function askIpamd(socketPath: string, body: IpamdRequest, timeoutMs = 30_000): Promise<IpamdReply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/v1/cni', method: 'POST', headers: { 'content-type': 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let reply: IpamdReply;
        try {
          reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as IpamdReply;
        } catch {
          return reject(new CniError(ErrorCode.Internal, `ipamd at ${socketPath} answered ${res.statusCode} with no JSON`));
        }
        if (res.statusCode !== 200) return reject(new CniError(ErrorCode.TryAgainLater, `ipamd: ${reply.error ?? `status ${res.statusCode}`}`));
        resolve(reply);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new CniError(ErrorCode.TryAgainLater, `cannot reach ipamd at ${socketPath}: ${e.code ?? e.message} (is the cluster's daemon running?)`)));
    req.end(JSON.stringify(body));
  });
}

async function add(args: CmdArgs): Promise<Result> {
  const reply = await askIpamd(socketOf(args), { command: 'ADD', containerID: args.containerID, ifName: args.ifName });
  if (!reply.address || !reply.gateway) throw new CniError(ErrorCode.Internal, 'ipamd gave no address');
  return { cniVersion: args.conf.cniVersion, ips: [{ address: reply.address, gateway: reply.gateway }], routes: [{ dst: '0.0.0.0/0' }], dns: {} };
}

async function del(args: CmdArgs): Promise<void> {
  await askIpamd(socketOf(args), { command: 'DEL', containerID: args.containerID, ifName: args.ifName });
}

async function check(args: CmdArgs): Promise<void> {
  await askIpamd(socketOf(args), { command: 'CHECK', containerID: args.containerID, ifName: args.ifName });
}

async function gc(args: CmdArgs): Promise<void> {
  await askIpamd(socketOf(args), { command: 'GC', valid: validAttachments(args.conf).map((a) => ({ containerID: a.containerID, ifName: a.ifname })) });
}

async function status(args: CmdArgs): Promise<void> {
  await askIpamd(socketOf(args), { command: 'STATUS' }, 5_000);
}

export const vpcIpam: PluginFuncs = { add, del, check, gc, status };
