"""PURE: Kafka API keys and their names as in the protocol spec (keys 0-92).

The innermost layer holds the table: the decoder names frames of APIs kafka-python has no
schema for, and kshock.conditions (and through it kshock.workloads) re-exports it.
"""

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


def api_key_of(name: str) -> int | None:
    """The API key of a spec name, ignoring case (`produce` -> 0); None when unknown."""
    folded = name.casefold()
    for key, known in enumerate(API_NAMES):
        if known.casefold() == folded:
            return key
    return None
