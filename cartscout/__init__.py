"""cartscout: finds health-plan members who are, or are about to become, CAR T-cell therapy candidates."""

__version__ = "0.1.0"
