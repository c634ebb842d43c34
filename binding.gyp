{
  "targets": [
    {
      "target_name": "kubewire_netns",
      "sources": ["native/netns.c"],
      "cflags": ["-Wall", "-O2"]
    },
    {
      "target_name": "kubewire-spawner",
      "type": "executable",
      "sources": ["native/spawner.c"],
      "cflags": ["-Wall", "-O2"]
    },
    {
      "target_name": "kubewire-cni-shim",
      "type": "executable",
      "sources": ["native/cni-shim.c"],
      "cflags": ["-Wall", "-O2"]
    }
  ]
}
