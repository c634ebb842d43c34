{
  "targets": [
    {
      "target_name": "kubewire_netns",
      "sources": ["native/netns.c"],
      "cflags": ["-Wall", "-O2"]
    }
  ]
}
