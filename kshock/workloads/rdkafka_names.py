"""PURE: librdkafka's names for Kafka API keys (its debug log's spelling); the spec table is kshock.wire.apis."""

from __future__ import annotations

from kshock.wire.apis import API_NAMES, api_key, api_name

__all__ = ["API_NAMES", "api_key", "api_name", "rdkafka_api_key"]

# librdkafka's rd_kafka_ApiKey2str() names that differ from the spec (its debug log adds "Request").
_RDKAFKA_NAMES = (
    ("ApiVersion", 18),
    ("AlterIsr", 56),
    ("ElectLeadersRequest", 43),
    ("IncrementalAlterConfigsRequest", 44),
    ("AlterPartitionReassignmentsRequest", 45),
    ("ListPartitionReassignmentsRequest", 46),
    ("OffsetDeleteRequest", 47),
    ("DescribeClientQuotasRequest", 48),
    ("AlterClientQuotasRequest", 49),
    ("DescribeUserScramCredentialsRequest", 50),
    ("AlterUserScramCredentialsRequest", 51),
    ("VoteRequest", 52),
    ("BeginQuorumEpochRequest", 53),
    ("EndQuorumEpochRequest", 54),
    ("DescribeQuorumRequest", 55),
    ("UpdateFeaturesRequest", 57),
    ("EnvelopeRequest", 58),
)


def rdkafka_api_key(name: str) -> int:
    """The API key of a request name as librdkafka logs it, without the trailing `Request` it adds
    (`Sent ApiVersionRequest` -> `ApiVersion` -> 18, `Unknown-77?` -> 77); raises KeyError."""
    for rdkafka_name, key in _RDKAFKA_NAMES:
        if name == rdkafka_name:
            return key
    if name.startswith("Unknown-") and name.endswith("?"):
        try:
            return int(name[len("Unknown-"):-1])
        except ValueError:
            raise KeyError(name) from None
    return api_key(name)
