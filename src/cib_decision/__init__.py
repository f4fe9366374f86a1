"""cib-decision: the decision task that plans cloud machine image builds under Taskcluster."""

__version__ = "0.1.0"
