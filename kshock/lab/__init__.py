"""EDGE: a disposable Kafka lab made of network namespaces, a Tansu broker and real clients."""
