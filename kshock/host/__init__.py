"""EDGE: facts of this host: network namespaces (entered in one place), bounded file reading, short Kafka probes."""
