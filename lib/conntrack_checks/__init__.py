"""conntrack-checks: Nagios/Icinga plugins for the netfilter connection-tracking table."""

__version__ = "0.1.0"
