"""PURE: what the kernel will do — rule sets as plain data, their rendering and emulation."""
