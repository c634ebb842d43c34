// The Kubernetes version kubewire's clusters speak: /version's answer, the kubelets' nodeInfo.

export const VERSION = { major: '1', minor: '31', gitVersion: 'v1.31.0-kubewire', platform: 'linux/amd64' };
