"""EDGE: capture files (pcap/pcapng reader and writer) and the live AF_PACKET source with its BPF filter."""
