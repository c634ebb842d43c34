// Validation of the names that reach the kernel, iptables and the filesystem. Each returns
// a description of the problem, or undefined when the name is fine.

/** The spec: container IDs are alphanumeric, then alphanumerics, underscore, dot or hyphen. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** The spec: network names start alphanumeric and are path-safe. */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function validateContainerID(id: string): string | undefined {
  if (!id) return 'must not be empty';
  if (id.length > 256) return 'is longer than 256 characters';
  if (!CONTAINER_ID.test(id)) return `${JSON.stringify(id)} must be alphanumeric, then alphanumerics, '_', '.' or '-'`;
  return undefined;
}

export function validateNetworkName(name: string): string | undefined {
  if (!name) return 'must not be empty';
  if (name.length > 200) return 'is longer than 200 characters';
  if (!NETWORK_NAME.test(name)) return `${JSON.stringify(name)} must be alphanumeric, then alphanumerics, '_', '.' or '-'`;
  return undefined;
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..' (as libcni checks). */
export function validateIfName(name: string): string | undefined {
  if (!name) return 'must not be empty';
  if (Buffer.byteLength(name) > 15) return `${JSON.stringify(name)} is longer than 15 characters`;
  if (name === '.' || name === '..') return `${JSON.stringify(name)} is not a valid interface name`;
  if (/[/:\s]/.test(name)) return `${JSON.stringify(name)} contains '/', ':' or whitespace`;
  // The kernel would take these, but they mean something to the tools' batch parsers.
  if (/["'#\\]/.test(name)) return `${JSON.stringify(name)} contains a quote, '#' or '\\'`;
  if (!/^[\x21-\x7e]+$/.test(name)) return `${JSON.stringify(name)} contains non-printable or non-ASCII characters`;
  return undefined;
}

/** CNI_NETNS: an absolute path without characters that a tool's batch parser would interpret. */
export function validateNetnsPath(path: string): string | undefined {
  if (!path.startsWith('/')) return `${JSON.stringify(path)} is not an absolute path`;
  if (/[\s"'#\\]/.test(path)) return `${JSON.stringify(path)} contains whitespace, a quote, '#' or '\\'`;
  return undefined;
}
