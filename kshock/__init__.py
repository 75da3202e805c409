"""kshock: break Apache Kafka on purpose, precisely."""

__version__ = "0.1.0"
