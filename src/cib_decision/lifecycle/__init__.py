"""Life cycle of built images and of what builds leave behind: purging orphaned build
resources, promoting, rolling back and garbage-collecting images."""
