// The loopback plugin: brings `lo` up in the pod (whatever CNI_IFNAME says), as the
// runtime asks before eth0 when a pod starts.

import { isNotFound } from '../../../dataplane/port.ts';
import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { Result } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { podNetnsPresent, requireNetns } from '../sandbox.ts';

function isLoopbackAddress(local: string): boolean {
  return local === '::1' || local.startsWith('127.');
}

export const loopback: PluginFuncs = {
  async add(args: CmdArgs): Promise<Result> {
    requireNetns(args);
    const lo = await args.dataplane.at(args.netns).apply([{ op: 'link-set', name: 'lo', up: true }], { show: 'lo' });
    const addrs = lo?.addr_info ?? [];
    const foreign = addrs.find((a) => !isLoopbackAddress(a.local));
    if (foreign) throw new CniError(ErrorCode.Internal, `lo in ${args.netns} has a non-loopback address ${foreign.local}`);
    if (args.conf.prevResult) return args.conf.prevResult;
    return {
      cniVersion: args.conf.cniVersion,
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: args.netns }],
      ips: addrs.map((a) => ({ address: `${a.local}/${a.prefixlen}`, interface: 0 })),
    };
  },

  async del(args: CmdArgs): Promise<void> {
    if (!podNetnsPresent(args.dataplane, args)) return; // the namespace took lo with it
    await args.dataplane.at(args.netns).apply([{ op: 'link-set', name: 'lo', up: false }]).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  },

  async check(args: CmdArgs): Promise<void> {
    requireNetns(args);
    const lo = await args.dataplane.at(args.netns).link('lo');
    if (!lo?.flags.includes('UP')) throw new CniError(ErrorCode.Internal, `lo is down in ${args.netns}`);
  },
};
