"""ics-monitor: a passive network security monitor for converged IT/OT networks."""

__version__ = "0.1.0"
