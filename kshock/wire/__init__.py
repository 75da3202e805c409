"""The pure wire core: raw packets in, Kafka events out (sans-I/O). See sniffer.Sniffer."""
