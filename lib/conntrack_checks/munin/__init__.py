"""The Munin plugin conntrack-munin: graphs from the same readers as the Nagios plugins.

settings.py reads plugin-conf.d's env settings; graphs.py turns readings
into Munin's config and fetch lines; run.py speaks the plugin protocol
(autoconf, config, fetch, dirtyconfig). Nothing here knows argparse or
nagiosplugin's Check.
"""
