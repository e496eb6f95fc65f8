import CRdKafka

/// A librdkafka mock cluster in this process: brokers that speak the Kafka protocol on
/// loopback TCP, with fault injection. For tests and the `spillway-kafka-mock` tool only.
///
/// The mock creates unknown topics (4 partitions) when a client asks for them with
/// `allow.auto.create.topics=true`, which is librdkafka's default for producers.
public final class KafkaMockCluster: @unchecked Sendable {
    // @unchecked Sendable: the mock cluster API forwards every call to the cluster's own
    // thread through an op queue, so it is safe from any thread; both pointers are freed
    // only in deinit.
    private let host: OpaquePointer  // rd_kafka_t that owns the cluster's threads
    private let cluster: OpaquePointer  // rd_kafka_mock_cluster_t
    /// `host:port,...` for `bootstrap.servers`.
    public let bootstrapServers: String
    /// The brokers' ids: `1...brokerCount`.
    public let brokerIDs: ClosedRange<Int32>

    /// Starts `brokers` (default 3) mock brokers on ephemeral loopback ports.
    public init(brokers: Int = 3) throws(KafkaSinkError) {
        guard (1...100).contains(brokers) else {
            throw KafkaSinkError(.mockCluster, problem: "cannot start \(brokers) mock brokers", fix: "ask for 1 to 100 brokers")
        }
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        // The host handle never connects anywhere; keep its "no bootstrap.servers" chatter quiet.
        _ = rd_kafka_conf_set(conf, "log_level", "3", &errstr, errstr.count)
        guard let host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaSinkError(
                .mockCluster, problem: "librdkafka could not create the mock cluster's host handle",
                fix: "check that librdkafka is installed correctly")
        }
        guard let cluster = rd_kafka_mock_cluster_new(host, Int32(brokers)) else {
            rd_kafka_destroy(host)
            throw KafkaSinkError(
                .mockCluster, problem: "librdkafka could not start \(brokers) mock brokers",
                fix: "check that loopback TCP ports can be bound")
        }
        self.host = host
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        brokerIDs = 1...Int32(brokers)
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)  // before its host handle
        rd_kafka_destroy(host)
    }

    /// Creates a topic; `replicationFactor` defaults to min(3, broker count).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int? = nil) throws(KafkaSinkError) {
        let replicas = replicationFactor ?? min(3, brokerIDs.count)
        try check(
            rd_kafka_mock_topic_create(cluster, name, Int32(clamping: partitions), Int32(clamping: replicas)),
            "create topic '\(name)' with \(partitions) partitions and replication factor \(replicas)")
    }

    /// Disconnects broker `id` and refuses new connections to it (leadership does not move).
    public func setBrokerDown(_ id: Int32) throws(KafkaSinkError) {
        try check(rd_kafka_mock_broker_set_down(cluster, id), "take broker \(id) down")
    }

    /// Lets broker `id` accept connections again.
    public func setBrokerUp(_ id: Int32) throws(KafkaSinkError) {
        try check(rd_kafka_mock_broker_set_up(cluster, id), "bring broker \(id) up")
    }

    /// Takes every broker down: a full outage.
    public func setAllBrokersDown() throws(KafkaSinkError) {
        for id in brokerIDs { try setBrokerDown(id) }
    }

    /// Brings every broker back up.
    public func setAllBrokersUp() throws(KafkaSinkError) {
        for id in brokerIDs { try setBrokerUp(id) }
    }

    /// Makes the cluster answer the next `errorCodes.count` requests with Kafka API key `apiKey` (0 is
    /// Produce) with those Kafka error codes, in order (e.g. 47, INVALID_PRODUCER_EPOCH).
    public func failNextRequests(apiKey: Int16, errorCodes: [Int32]) {
        let errors = errorCodes.map { rd_kafka_resp_err_t($0) }
        errors.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, apiKey, $0.count, $0.baseAddress) }
    }

    private func check(_ code: rd_kafka_resp_err_t, _ action: String) throws(KafkaSinkError) {
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        throw KafkaSinkError(
            .mockCluster, problem: "could not \(action): \(String(cString: rd_kafka_err2str(code)))",
            fix: "use broker ids \(brokerIDs.lowerBound)...\(brokerIDs.upperBound), positive counts and a new topic name",
            rdKafkaErrorName: String(cString: rd_kafka_err2name(code)))
    }
}
