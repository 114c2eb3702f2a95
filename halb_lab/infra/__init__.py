"""The lab's machines and network: the image, the systemd nodes, namespaces and bridge, the workers."""
