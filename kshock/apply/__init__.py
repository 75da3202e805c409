"""EDGE: the only code that changes the kernel — iptables rule sets, tc qdiscs, their state and expiry."""
