// The Kubernetes version kubewire's clusters speak: /version's answer, the kubelets' nodeInfo.
// The minor picks the kubectl that google-cloud-cli's dispatcher (/usr/bin/kubectl) runs:
// kubectl.1.<minor>, and 1.32 is the one the fact sheet (kube-api.md) was measured with.

export const VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-kubewire', platform: 'linux/amd64' };
