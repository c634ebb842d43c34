// The ptp plugin's configuration, with the reference plugin's fields: ipMasq, mtu and the
// delegated IPAM.

import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { NetConf } from '../../spec/types.ts';

export interface PtpConf {
  ipMasq: boolean;
  mtu?: number;
}

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

export function parsePtpConf(conf: NetConf): PtpConf {
  const out: PtpConf = { ipMasq: false };
  if (conf.ipMasq !== undefined) {
    if (typeof conf.ipMasq !== 'boolean') throw invalid(`field "ipMasq" must be true or false, not ${JSON.stringify(conf.ipMasq)}`);
    out.ipMasq = conf.ipMasq;
  }
  if (conf.ipMasqBackend !== undefined && conf.ipMasqBackend !== 'iptables') {
    throw new CniError(ErrorCode.UnsupportedField, `field "ipMasqBackend" (${JSON.stringify(conf.ipMasqBackend)}) is not supported: only "iptables"`);
  }
  if (conf.mtu !== undefined && conf.mtu !== 0) {
    if (typeof conf.mtu !== 'number' || !Number.isInteger(conf.mtu) || conf.mtu < 68 || conf.mtu > 65535) {
      throw invalid(`field "mtu" must be an integer between 68 and 65535, not ${JSON.stringify(conf.mtu)}`);
    }
    out.mtu = conf.mtu;
  }
  if (!conf.ipam?.type) throw invalid('field "ipam.type" is required: the ptp plugin delegates IP allocation');
  return out;
}
