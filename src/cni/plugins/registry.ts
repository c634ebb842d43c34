// kubewire's plugins by type name: what the executables dispatch on, and what the runtime
// may call in-process.

import type { PluginFuncs } from '../skel/skel.ts';
import { hostLocal } from '../ipam/host-local/plugin.ts';
import { vpcIpam } from '../ipam/vpc/plugin.ts';
import { bridge } from './bridge/plugin.ts';
import { loopback } from './loopback/plugin.ts';
import { portmap } from './portmap/plugin.ts';
import { ptp } from './ptp/plugin.ts';

export const PLUGINS: Record<string, PluginFuncs> = {
  bridge,
  'host-local': hostLocal,
  loopback,
  portmap,
  ptp,
  vpc: vpcIpam,
};
