"""The `cib image` builders: what the disk-image, machine-image and tag tasks run."""
