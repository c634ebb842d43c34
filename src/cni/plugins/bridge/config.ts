// The bridge plugin's configuration, with the reference plugin's defaults and checks.

import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { NetConf } from '../../spec/types.ts';
import { validateIfName } from '../../spec/names.ts';

export interface BridgeConf {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  hairpinMode: boolean;
  promiscMode: boolean;
  mtu?: number;
  /** MAC for the pod's interface: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac. */
  mac?: string;
}

const BOOLEAN_FIELDS = ['isGateway', 'isDefaultGateway', 'forceAddress', 'ipMasq', 'hairpinMode', 'promiscMode'] as const;
/** The reference plugin's options that kubewire does not implement: refused (code 2) rather than ignored. */
const UNSUPPORTED_FIELDS = ['vlan', 'vlanTrunk', 'preserveDefaultVlan', 'macspoofchk', 'enabledad', 'disableContainerInterface', 'portIsolation'] as const;
const MAC = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

export function parseBridgeConf(conf: NetConf, cniArgs: Map<string, string>): BridgeConf {
  const out: BridgeConf = {
    bridge: 'cni0',
    isGateway: false,
    isDefaultGateway: false,
    forceAddress: false,
    ipMasq: false,
    hairpinMode: false,
    promiscMode: false,
  };
  if (conf.bridge !== undefined) {
    if (typeof conf.bridge !== 'string') throw invalid('field "bridge" must be a string');
    const problem = validateIfName(conf.bridge);
    if (problem) throw invalid(`field "bridge" ${problem}`);
    out.bridge = conf.bridge;
  }
  for (const field of BOOLEAN_FIELDS) {
    const v = conf[field];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw invalid(`field "${field}" must be true or false, not ${JSON.stringify(v)}`);
    out[field] = v;
  }
  for (const field of UNSUPPORTED_FIELDS) {
    const v = conf[field];
    if (v !== undefined && v !== false && v !== 0 && !(Array.isArray(v) && !v.length)) {
      throw new CniError(ErrorCode.UnsupportedField, `field "${field}" (${JSON.stringify(v)}) is not supported by kubewire's bridge plugin`);
    }
  }
  if (conf.ipMasqBackend !== undefined && conf.ipMasqBackend !== 'iptables') {
    throw new CniError(ErrorCode.UnsupportedField, `field "ipMasqBackend" (${JSON.stringify(conf.ipMasqBackend)}) is not supported: only "iptables"`);
  }
  if (out.isDefaultGateway) out.isGateway = true;
  if (out.hairpinMode && out.promiscMode) throw invalid('cannot set hairpinMode and promiscMode at the same time');
  if (conf.mtu !== undefined && conf.mtu !== 0) {
    if (typeof conf.mtu !== 'number' || !Number.isInteger(conf.mtu) || conf.mtu < 68 || conf.mtu > 65535) {
      throw invalid(`field "mtu" must be an integer between 68 and 65535, not ${JSON.stringify(conf.mtu)}`);
    }
    out.mtu = conf.mtu;
  }
  const mac = (conf.runtimeConfig?.mac ?? (conf.args?.cni as { mac?: unknown } | undefined)?.mac ?? cniArgs.get('MAC')) as unknown;
  if (mac !== undefined) {
    if (typeof mac !== 'string' || !MAC.test(mac)) throw invalid(`MAC address ${JSON.stringify(mac)} is not valid`);
    out.mac = mac.toLowerCase();
  }
  if (!conf.ipam?.type) throw invalid('field "ipam.type" is required: the bridge plugin delegates IP allocation');
  return out;
}
