"""Transforms of cib's kinds: fleet items in, taskgraph task descriptions out."""
