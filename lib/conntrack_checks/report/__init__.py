"""conntrack-report: every section of the suite on one page for the person on call."""
