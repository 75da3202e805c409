"""PURE: Kafka API keys and their names as in the protocol spec, and librdkafka's names for them."""

from __future__ import annotations

# Index = ApiKey; names as in Kafka's message schemas (https://kafka.apache.org/protocol#protocol_api_keys).
# Key 74 was ListClientMetricsResources before Kafka 4.1.
API_NAMES = (
    "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
    "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat",
    "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions",
    "CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch",
    "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls",
    "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs", "DescribeLogDirs",
    "SaslAuthenticate", "CreatePartitions", "CreateDelegationToken", "RenewDelegationToken",
    "ExpireDelegationToken", "DescribeDelegationToken", "DeleteGroups", "ElectLeaders",
    "IncrementalAlterConfigs", "AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete",
    "DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials", "AlterUserScramCredentials",
    "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum", "AlterPartition", "UpdateFeatures",
    "Envelope", "FetchSnapshot", "DescribeCluster", "DescribeProducers", "BrokerRegistration",
    "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions", "ListTransactions", "AllocateProducerIds",
    "ConsumerGroupHeartbeat", "ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions",
    "PushTelemetry", "AssignReplicasToDirs", "ListConfigResources", "DescribeTopicPartitions",
    "ShareGroupHeartbeat", "ShareGroupDescribe", "ShareFetch", "ShareAcknowledge", "AddRaftVoter",
    "RemoveRaftVoter", "UpdateRaftVoter", "InitializeShareGroupState", "ReadShareGroupState",
    "WriteShareGroupState", "DeleteShareGroupState", "ReadShareGroupStateSummary", "StreamsGroupHeartbeat",
    "StreamsGroupDescribe", "DescribeShareGroupOffsets", "AlterShareGroupOffsets", "DeleteShareGroupOffsets",
)

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


def api_name(api_key: int) -> str:
    """The spec name of an API key; `Unknown(<key>)` for a key this table does not know."""
    if 0 <= api_key < len(API_NAMES):
        return API_NAMES[api_key]
    return f"Unknown({api_key})"


def api_key(name: str) -> int:
    """The API key of a spec name (`Produce` -> 0); raises KeyError for an unknown name."""
    try:
        return API_NAMES.index(name)
    except ValueError:
        raise KeyError(name) from None


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
