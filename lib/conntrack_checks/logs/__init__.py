"""The kernel's log: message wordings (logmsg) and the sources (logfile, kmsg, journal)."""
