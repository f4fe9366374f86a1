"""The config model: load, validate and describe a fleet of image keys."""

from .load import load_fleet
from .model import Environment, Fleet, ImageKey, Pool, SharedInputs, Target, normalise_region
from .source import ConfigSource, DirectorySource

__all__ = ["ConfigSource", "DirectorySource", "Environment", "Fleet", "ImageKey", "Pool",
           "SharedInputs", "Target", "load_fleet", "normalise_region"]
