"""tunedeck.core: headless domain logic (datasets, templates, configs, jobs, runners)."""

__version__ = "0.1.0"
