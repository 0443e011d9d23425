"""What the running kernel says, read in the current network namespace.

sysctl (count, max, buckets), netns (finding and entering namespaces), ctstats and
ctnetlink (the per-CPU counters), ctdump (the table's entries), dump (each
namespace's table, exact or sampled), sizing (memory arithmetic) and bootconf
(what the next boot applies). Only errors and the standard library are
imported here.
"""
