"""EDGE: real Kafka client programs that report exact ground truth.

`python -m kshock.workloads KIND ...` runs one kafka-python or librdkafka client against a broker
for a bounded time and writes a JSON report: records acknowledged and consumed per topic, and every
request the client wrote to a socket (api_key, api_version, correlation_id, connection). The lab
runs these inside network namespaces while it records the traffic; the reports become the capture
corpus's ground-truth sidecars.
"""
