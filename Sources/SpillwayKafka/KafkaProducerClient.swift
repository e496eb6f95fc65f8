import CRdKafka
import Dispatch
import Logging
import Synchronization

/// An idempotent Kafka producer for at-least-once delivery, backed by librdkafka.
///
/// Delivery reports are served by a dedicated poll loop on its own `DispatchQueue`; enqueueing
/// (which may wait for room in librdkafka's queue) and flushing run on another serial queue,
/// so nothing here blocks Swift's cooperative thread pool. Call `close(timeout:)` before
/// dropping the client so outstanding messages are delivered.
public final class KafkaProducerClient: @unchecked Sendable {
    // @unchecked Sendable: librdkafka documents rd_kafka_produceva, rd_kafka_poll and
    // rd_kafka_flush as thread-safe on one handle; the Swift state that changes lives in an
    // Atomic (`isClosed`) or a Mutex (the tracker), and the handle is destroyed only in deinit,
    // when no other reference to the client exists.
    private let handle: Handle
    private let context: CallbackContext  // the conf opaque: must outlive `handle`
    private let pollLoop: PollLoop
    private var workQueue: DispatchQueue { context.workQueue }
    private let isClosed = Atomic(false)
    private let logger: Logger
    /// Topic handles, made once per topic and destroyed before the client handle.
    private let preparedTopics = Mutex<[String: TopicHandle]>([:])

    /// Creates a producer from librdkafka properties (see librdkafka's CONFIGURATION.md).
    ///
    /// Forced: `enable.idempotence=true` and `acks=all`; setting either to something weaker
    /// throws. Default: `partitioner=murmur2_random` (the Java client's). All other librdkafka
    /// defaults apply, e.g. `message.timeout.ms=300000`, which bounds how long `send` waits.
    /// Values of properties whose names contain "password", "secret", "sasl" or "ssl.key"
    /// never appear in errors.
    public init(properties: [String: String], logger: Logger = Logger(label: "spillway.kafka")) throws(KafkaSinkError) {
        self.logger = logger
        let context = CallbackContext(logger: logger, properties: properties)
        self.context = context

        let conf = try Self.makeConf(properties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { kafka, message, opaque in
            guard let message, let opaque else { return }
            Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue().deliveryReport(message.pointee, kafka: kafka)
        }
        rd_kafka_conf_set_error_cb(conf) { kafka, code, reason, opaque in
            guard let opaque else { return }
            Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
                .clientError(kafka, code: code, reason: reason.map { String(cString: $0) } ?? "")
        }
        rd_kafka_conf_set_log_cb(conf) { kafka, level, facility, message in
            guard let kafka, let opaque = rd_kafka_opaque(kafka) else { return }
            Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue().log(
                level: level, facility: facility.map { String(cString: $0) } ?? "",
                message: message.map { String(cString: $0) } ?? "")
        }

        // rd_kafka_new takes ownership of conf only when it succeeds.
        let (created, message) = withErrorBuffer { rd_kafka_new(RD_KAFKA_PRODUCER, conf, $0, $1) }
        guard let created else {
            rd_kafka_conf_destroy(conf)
            throw .creation(message, properties: properties)
        }
        handle = Handle(created)
        pollLoop = PollLoop(handle: handle)
        // Weak: the poll loop (whose delivery reports call this) stops in deinit, and a purge queued from it
        // holds the client, so the handle it purges outlives it.
        context.purgeQueued.withLock { $0 = { [weak self] in self?.purgeInOrder(flags: Int32(RD_KAFKA_PURGE_F_QUEUE)) } }
    }

    /// Checks `properties` the way `init` would (names, values, the forced pair, and the checks
    /// rd_kafka_new makes across properties and on TLS files) without connecting anywhere: the
    /// trial producer is created without `bootstrap.servers` and destroyed at once.
    public static func validate(properties: [String: String]) throws(KafkaSinkError) {
        var offline = properties
        offline.removeValue(forKey: "bootstrap.servers")
        offline.removeValue(forKey: "metadata.broker.list")
        let conf = try makeConf(offline)
        // Without brokers librdkafka would warn about the missing bootstrap list; nothing else to say.
        _ = withErrorBuffer { rd_kafka_conf_set(conf, "log_level", "0", $0, $1) }
        let (created, message) = withErrorBuffer { rd_kafka_new(RD_KAFKA_PRODUCER, conf, $0, $1) }
        guard let created else {
            rd_kafka_conf_destroy(conf)
            throw .creation(message, properties: properties)
        }
        rd_kafka_destroy(created)
    }

    /// A conf with every effective property set; the caller owns it.
    private static func makeConf(_ properties: [String: String]) throws(KafkaSinkError) -> OpaquePointer {
        let effective = try ProducerProperties.effective(properties)
        let conf = rd_kafka_conf_new()!
        for (name, value) in effective {
            let (result, message) = withErrorBuffer { rd_kafka_conf_set(conf, name, value, $0, $1) }
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                let shown = ProducerProperties.isSensitive(name) ? "a value (hidden: it may be a secret)" : "'\(value)'"
                throw KafkaSinkError(
                    .invalidConfiguration,
                    problem: "librdkafka rejected property '\(name)' set to \(shown): "
                        + ProducerProperties.redact(message, values: properties),
                    fix: result == RD_KAFKA_CONF_UNKNOWN
                        ? "remove or correct '\(name)' in the Kafka properties; valid names are in librdkafka's CONFIGURATION.md"
                        : "correct the value of '\(name)' in the Kafka properties (see librdkafka's CONFIGURATION.md)",
                    property: name)
            }
        }
        return conf
    }

    /// Whether the producer hit a fatal error (the idempotent producer's guarantees could not be kept);
    /// it then fails every message, and a new producer is needed.
    public var hasFatalError: Bool { rd_kafka_fatal_error(handle.raw, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR }

    /// The most recent client-level error librdkafka reported (e.g. "Connect to ipv4#10.0.0.1:9092 failed:
    /// Connection refused"), with secret property values removed; nil if there was none. Delivery errors
    /// alone often say only "Message timed out"; this says why.
    public var lastClientError: String? { context.lastClientError.withLock { $0 } }

    deinit {
        pollLoop.stopAndWait()
        let outstanding = rd_kafka_outq_len(handle.raw)
        if outstanding > 0 {
            logger.warning(
                "Kafka producer dropped with messages outstanding; they will not be delivered. Please call close().",
                metadata: [LogKey.outstanding: "\(outstanding)"])
        }
        for topic in preparedTopics.withLock({ Array($0.values) }) { rd_kafka_topic_destroy(topic.raw) }
        // Blocks until librdkafka's threads have stopped; no callback runs after it returns.
        rd_kafka_destroy(handle.raw)
        context.tracker.failAll(with: .closed())
    }

    /// Asks the cluster about `topics` now, so the first records to them are not held until librdkafka's
    /// next periodic metadata refresh (up to a second), and returns what the cluster said was wrong with
    /// each topic that has a problem (e.g. it does not exist and auto-creation is off). Stops asking once
    /// `timeout` has passed and reports the remaining topics as unreachable then.
    public func prepare(topics: [String], timeout: Duration) async -> [String: KafkaSinkError] {
        let deadline = ContinuousClock.now + timeout
        var problems: [String: KafkaSinkError] = [:]
        for topic in topics {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                problems[topic] = .metadataTimedOut(topic: topic, after: timeout, lastError: lastClientError)
                continue
            }
            let code = await withCheckedContinuation { continuation in
                // rd_kafka_metadata blocks; keep it off the produce queue and the cooperative pool.
                DispatchQueue.global().async { continuation.resume(returning: self.lookUp(topic, timeout: remaining)) }
            }
            switch code {
            case RD_KAFKA_RESP_ERR_NO_ERROR: break
            case RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT:
                problems[topic] = .metadataTimedOut(topic: topic, after: timeout, lastError: lastClientError)
            default:
                problems[topic] = .delivery(code, topic: topic, kafka: handle.raw)
            }
        }
        return problems
    }

    /// One blocking metadata request for `topic`; the topic's handle is kept so librdkafka keeps what it
    /// learnt.
    private func lookUp(_ topic: String, timeout: Duration) -> rd_kafka_resp_err_t {
        guard let topicHandle = topicHandle(topic) else { return rd_kafka_last_error() }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(handle.raw, 0, topicHandle.raw, &metadata, timeout.clampedMilliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return code }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { return RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC }
        let found = metadata.pointee.topics[0]
        if found.err == RD_KAFKA_RESP_ERR_NO_ERROR, found.partition_cnt == 0 { return RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION }
        return found.err
    }

    /// Produces `messages` and waits until the cluster acknowledged every one of them.
    ///
    /// Returns where each message was stored, in the order given. Throws if any message
    /// failed (the error names the first failure and how many failed); the whole batch can
    /// then be retried, which may duplicate the messages that did get through. Messages are
    /// enqueued in order, so records with the same key keep their order. Cancellation is
    /// not honoured once messages are enqueued: they cannot be recalled, and the wait is
    /// bounded by `message.timeout.ms`.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws(KafkaSinkError) -> [KafkaDeliveryResult] {
        guard !messages.isEmpty else { return [] }
        return try await enqueue { messages }.delivered()
    }

    /// Builds a batch with `makeMessages` and hands it to librdkafka on the producer's serial queue, then
    /// returns at once; `delivered()` on the result waits for the cluster's acknowledgements. Building off
    /// the caller's task lets a pipeline decode its next batch meanwhile.
    ///
    /// Batches are built and enqueued in the order of `enqueue` calls and keep that order per partition,
    /// also across librdkafka's own retries (the producer is idempotent), so a caller may enqueue the next
    /// batch before the previous one is acknowledged. If a batch fails, batches enqueued after it may still
    /// succeed: to keep per-key order, send the failed batch and every later one again, in order.
    public func enqueue(
        building makeMessages: @escaping @Sendable () throws(KafkaSinkError) -> [KafkaOutgoingMessage]
    ) -> KafkaPendingDelivery {
        enqueue { () throws(KafkaSinkError) in KafkaRecordBatch(try makeMessages()) }
    }

    func enqueue(building makeRecords: @escaping @Sendable () throws(KafkaSinkError) -> KafkaRecordBatch) -> KafkaPendingDelivery {
        let pending = KafkaPendingDelivery()
        guard !isClosed.load(ordering: .acquiring) else {
            pending.refuse(.closed())
            return pending
        }
        let abandonments = context.abandonments.load(ordering: .acquiring)
        workQueue.async {
            let records: KafkaRecordBatch
            do throws(KafkaSinkError) {
                records = try makeRecords()
            } catch {
                pending.refuse(error)
                return
            }
            let batch = self.context.tracker.register(count: max(1, records.count))
            pending.accept(batch, topics: records.topics, recordTopics: records.records.map(\.topic))
            if records.count == 0 {
                self.context.tracker.complete(batch.token(at: 0), with: .stored(partition: -1, offset: -1))
            } else {
                self.enqueue(records, batch: batch, abandonmentsWhenSubmitted: abandonments)
            }
        }
        return pending
    }

    /// Produces one message and waits for its acknowledgement; see `send(_:)` for batches.
    public func send(_ message: KafkaOutgoingMessage) async throws(KafkaSinkError) -> KafkaDeliveryResult {
        try await send([message])[0]
    }

    /// Waits up to `timeout` for every outstanding message to be delivered or to fail.
    /// Messages from `send` calls made meanwhile are enqueued after the flush ends.
    public func flush(timeout: Duration) async throws(KafkaSinkError) {
        let milliseconds = timeout.clampedMilliseconds
        let code = await withCheckedContinuation { continuation in
            workQueue.async { continuation.resume(returning: rd_kafka_flush(self.handle.raw, milliseconds)) }
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaSinkError(
                .flushTimedOut,
                problem: "\(rd_kafka_outq_len(handle.raw)) Kafka messages or requests were still outstanding after \(timeout)",
                fix: "check that the brokers are reachable, or allow a longer shutdown timeout",
                rdKafkaErrorName: errorName(code))
        }
    }

    /// Takes batches again after a failed record. From a record's failure on, the client refuses every batch
    /// enqueued after it and drops the records still queued behind it, so that no later record of the failed
    /// one's key is stored before it is sent again; the caller resumes once it sends again, in order, from
    /// before the failed record (the pipeline: at the start of its next session).
    public func resume() {
        // Behind every batch enqueued before it and the purge of the failure: a batch of the failed session
        // still waiting on the queue is refused, not produced after the resume.
        workQueue.async { self.context.isHolding.store(false, ordering: .releasing) }
    }

    /// Drops every message not yet acknowledged, queued or in flight, so that their waits end with a purge
    /// error; the producer stays usable. Per partition what is dropped is a suffix (in-flight messages precede
    /// queued ones), and an in-flight one may still be stored: delivering them all again later, in order,
    /// keeps every key in order. Does not block; batches enqueued before it and not yet produced are refused,
    /// and batches enqueued after it are produced only once the purge is complete.
    public func abandonOutstanding() {
        context.abandonments.add(1, ordering: .acquiringAndReleasing)
        purgeInOrder(flags: Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Purges on the work queue and waits there until librdkafka's broker threads have purged too. A
    /// non-blocking purge empties the partitions' queues later, on the broker threads: records a new session
    /// enqueued meanwhile went with them while its later ones were stored, so `v3` reached the topic before
    /// the redelivered `v2` (the soak's finding). Behind the purge, the next session's first batch is
    /// produced only once nothing of the old one is queued. The block holds the client: the handle outlives it.
    private func purgeInOrder(flags: Int32) {
        workQueue.async { [self] in _ = rd_kafka_purge(handle.raw, flags) }
    }

    /// Stops accepting messages, flushes outstanding ones (up to `timeout`; default 30 s)
    /// and stops the poll loop. Messages still outstanding after `timeout` are purged, their
    /// `send` calls fail, and this throws. Calling it again does nothing.
    public func close(timeout: Duration = .seconds(30)) async throws(KafkaSinkError) {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var failure: KafkaSinkError?
        do {
            try await flush(timeout: timeout)
        } catch {
            failure = error
            // Purged messages get delivery reports with _PURGE_* errors; serve them so no
            // `send` keeps waiting.
            _ = rd_kafka_purge(handle.raw, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            try? await flush(timeout: .seconds(5))
        }
        await pollLoop.stop()
        // Nothing polls any more, so no delivery report can arrive for what is left.
        context.tracker.failAll(with: .closed())
        if let failure { throw failure }
    }

    // MARK: - Enqueueing (on workQueue)

    private func enqueue(_ records: KafkaRecordBatch, batch: PendingBatch, abandonmentsWhenSubmitted: Int) {
        // close() sets the flag before queueing its flush behind this block: a block that
        // sees it set runs after that flush, so its messages would never be reported.
        guard !isClosed.load(ordering: .acquiring) else {
            for index in 0..<records.count { context.tracker.complete(batch.token(at: index), with: .failed(.closed())) }
            return
        }
        if let refusal = refusal(abandonmentsWhenSubmitted: abandonmentsWhenSubmitted) {
            for index in 0..<records.count { context.tracker.complete(batch.token(at: index), with: .failed(refusal)) }
            return
        }
        let topics = records.topics.map(topicHandle)
        withCStrings(records.headerNames) { headerNames in
            records.bytes.withUnsafeBytes { bytes in
                var index = 0
                while index < records.count {
                    let record = records.records[index]
                    let token = batch.token(at: index)
                    let code = topics[record.topic].map { produce(record, of: records, bytes: bytes, topic: $0.raw, headerNames: headerNames, token: token) }
                        ?? rd_kafka_last_error()
                    switch code {
                    case RD_KAFKA_RESP_ERR_NO_ERROR:
                        index += 1
                    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                        // A batch waiting for room while the cluster is down must not hold up an abandonment
                        // or a failure's purge queued behind it: the rest of it is refused then.
                        if let refusal = refusal(abandonmentsWhenSubmitted: abandonmentsWhenSubmitted) {
                            for later in index..<records.count { context.tracker.complete(batch.token(at: later), with: .failed(refusal)) }
                            return
                        }
                        // Serving delivery reports frees room in librdkafka's queue; then retry. Keep the
                        // wait short: the poll loop may serve the report that frees room, and this call
                        // would then sleep for its whole timeout.
                        _ = rd_kafka_poll(handle.raw, 10)
                    default:
                        // Refused at once: nothing after it is produced, so nothing queued needs dropping.
                        context.hold(purgingQueue: false)
                        context.tracker.complete(
                            token, with: .failed(.delivery(code, topic: records.topics[record.topic], kafka: handle.raw)))
                        // Stop here so a later message with the same key cannot overtake this one.
                        let skipped = KafkaSinkError(
                            .notEnqueued,
                            problem: "message not sent because an earlier message in its batch failed",
                            fix: "fix the earlier failure and retry the batch")
                        for later in index + 1..<records.count { context.tracker.complete(batch.token(at: later), with: .failed(skipped)) }
                        return
                    }
                }
            }
        }
    }

    /// Why a batch is not produced (any more): a record before it failed, or it was abandoned.
    private func refusal(abandonmentsWhenSubmitted: Int) -> KafkaSinkError? {
        if context.isHolding.load(ordering: .acquiring) {
            return KafkaSinkError(
                .notEnqueued,
                problem: "batch not sent because a record enqueued before it failed (a later record of its key must not overtake it)",
                fix: "fix the earlier failure; the batch is sent again with everything after the checkpoint")
        }
        if context.abandonments.load(ordering: .acquiring) != abandonmentsWhenSubmitted {
            return KafkaSinkError(
                .closed, problem: "batch abandoned before it was sent (the session that submitted it ended)",
                fix: "nothing to do: the batch is sent again with everything after the checkpoint")
        }
        return nil
    }

    /// The handle of `topic`, made once per client: producing by handle spares librdkafka a lookup by name
    /// per record. Nil if librdkafka refuses the name.
    private func topicHandle(_ topic: String) -> TopicHandle? {
        preparedTopics.withLock { prepared in
            if let existing = prepared[topic] { return existing }
            guard let created = rd_kafka_topic_new(handle.raw, topic, nil) else { return nil }
            prepared[topic] = TopicHandle(raw: created)
            return prepared[topic]
        }
    }

    /// Hands one record to librdkafka, which copies key, value and headers out of `bytes`.
    private func produce(_ record: KafkaRecordBatch.Record, of records: KafkaRecordBatch, bytes: UnsafeRawBufferPointer,
                         topic: OpaquePointer, headerNames: [UnsafePointer<CChar>], token: UInt) -> rd_kafka_resp_err_t {
        let base = bytes.baseAddress ?? emptyBytes
        var headers: OpaquePointer?
        if !record.headers.isEmpty {
            headers = rd_kafka_headers_new(record.headers.count)
            for header in records.headers[record.headers] {
                _ = rd_kafka_header_add(headers, headerNames[header.name], -1, base + header.value.lowerBound, header.value.count)
            }
        }
        // At most six fields, on the stack: this runs once per record.
        let code = withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6) { fields -> rd_kafka_resp_err_t in
            var count = 0
            func field(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                var field = rd_kafka_vu_t()
                field.vtype = type
                set(&field)
                fields.initializeElement(at: count, to: field)
                count += 1
            }
            field(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
            field(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
            field(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: token) }
            if let key = record.key {
                field(RD_KAFKA_VTYPE_KEY) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: base + key.lowerBound); $0.u.mem.size = key.count }
            }
            if let value = record.value {  // no value field at all means a null value: a tombstone
                field(RD_KAFKA_VTYPE_VALUE) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: base + value.lowerBound); $0.u.mem.size = value.count }
            }
            if let headers { field(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
            defer { fields.baseAddress!.deinitialize(count: count) }
            guard let error = rd_kafka_produceva(handle.raw, fields.baseAddress, count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
            defer { rd_kafka_error_destroy(error) }
            return rd_kafka_error_code(error)
        }
        // librdkafka owns the headers only once the message is enqueued.
        if code != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return code
    }
}

// MARK: - Callbacks

/// State the C callbacks reach through the conf opaque.
private final class CallbackContext: Sendable {
    let tracker = DeliveryTracker()
    let logger: Logger
    /// The user's properties, to redact secret values from librdkafka's messages.
    let properties: [String: String]
    let lastClientError = Mutex<String?>(nil)
    /// Set when a record failed, until `resume`: see `KafkaProducerClient.resume`.
    let isHolding = Atomic(false)
    /// How often `abandonOutstanding` was called: a batch submitted before the latest one is not produced.
    let abandonments = Atomic(0)
    /// Builds and enqueues batches, and purges, in the order asked: see `KafkaProducerClient.purgeInOrder`.
    let workQueue = DispatchQueue(label: "spillway.kafka.produce")
    /// Queues the purge of what is queued behind a failed record (set by the client once it exists).
    let purgeQueued = Mutex<(@Sendable () -> Void)?>(nil)

    init(logger: Logger, properties: [String: String]) {
        self.logger = logger
        self.properties = properties
    }

    func deliveryReport(_ message: rd_kafka_message_t, kafka: OpaquePointer?) {
        let token = UInt(bitPattern: message._private)
        guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // Purges are Spillway's own doing (abandoning, closing): the records behind them go too.
            if message.err != RD_KAFKA_RESP_ERR__PURGE_QUEUE, message.err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT { hold(purgingQueue: true) }
            let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
            tracker.complete(token, with: .failed(.delivery(message.err, topic: topic, kafka: kafka)))
            return
        }
        tracker.complete(token, with: .stored(partition: message.partition, offset: message.offset))
    }

    /// After a failed record: later batches are refused until `resume`, and with `purgingQueue` the records still
    /// queued behind it are dropped (in flight ones may yet be stored, which the redelivery in order makes
    /// harmless).
    func hold(purgingQueue: Bool) {
        guard !isHolding.exchange(true, ordering: .acquiringAndReleasing), purgingQueue else { return }
        purgeQueued.withLock { $0 }?()
    }

    func clientError(_ kafka: OpaquePointer?, code: Int32, reason: String) {
        let code = rd_kafka_resp_err_t(code)
        let reason = ProducerProperties.redact(reason, values: properties)
        lastClientError.withLock { $0 = reason }
        if code == RD_KAFKA_RESP_ERR__FATAL {
            logger.critical("Kafka producer hit a fatal error", metadata: [
                LogKey.reason: "\(ProducerProperties.redact(fatalReason(kafka) ?? reason, values: properties))"])
        } else {
            logger.warning("Kafka client error", metadata: [LogKey.rdKafkaError: "\(errorName(code))", LogKey.reason: "\(reason)"])
        }
    }

    func log(level: Int32, facility: String, message: String) {
        let message = ProducerProperties.redact(message, values: properties)
        let metadata: Logger.Metadata = [LogKey.facility: "\(facility)"]
        switch level {  // syslog levels
        case ...2: logger.critical("\(message)", metadata: metadata)
        case 3: logger.error("\(message)", metadata: metadata)
        case 4: logger.warning("\(message)", metadata: metadata)
        case 5: logger.notice("\(message)", metadata: metadata)
        case 6: logger.info("\(message)", metadata: metadata)
        default: logger.debug("\(message)", metadata: metadata)
        }
    }
}

// MARK: - Poll loop

/// The owned `rd_kafka_t`, wrapped so it can be captured by the dispatch closures.
private struct Handle: @unchecked Sendable {
    // @unchecked Sendable: a plain pointer to a thread-safe librdkafka handle; it is
    // destroyed only by KafkaProducerClient.deinit, after the poll loop has stopped.
    let raw: OpaquePointer
    init(_ raw: OpaquePointer) { self.raw = raw }
}

/// A topic handle from rd_kafka_topic_new; librdkafka's topic handles are thread-safe.
private struct TopicHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// Serves delivery reports, errors and logs by calling rd_kafka_poll on a dedicated queue.
private final class PollLoop: Sendable {
    private let shouldStop = Atomic(false)
    private let running = DispatchGroup()

    init(handle: Handle) {
        running.enter()
        DispatchQueue(label: "spillway.kafka.poll").async { [self] in
            while !shouldStop.load(ordering: .acquiring) {
                _ = rd_kafka_poll(handle.raw, 100)
            }
            running.leave()
        }
    }

    /// Blocks until the loop has exited (at most one poll interval).
    func stopAndWait() {
        shouldStop.store(true, ordering: .releasing)
        running.wait()
    }

    func stop() async {
        shouldStop.store(true, ordering: .releasing)
        await withCheckedContinuation { continuation in
            running.notify(queue: .global()) { continuation.resume() }
        }
    }
}

// MARK: - Helpers

extension KafkaSinkError {
    fileprivate static func creation(_ message: String, properties: [String: String]) -> KafkaSinkError {
        KafkaSinkError(
            .clientCreation,
            problem: "librdkafka could not create the producer: " + ProducerProperties.redact(message, values: properties),
            fix: "correct the Kafka properties named in the message")
    }

    static func closed() -> KafkaSinkError {
        KafkaSinkError(
            .closed, problem: "the Kafka producer is closed",
            fix: "do not send after close(); create a new producer to continue")
    }

    fileprivate static func metadataTimedOut(topic: String, after timeout: Duration, lastError: String?) -> KafkaSinkError {
        KafkaSinkError(
            .deliveryTimedOut,
            problem: "the cluster did not describe topic '\(topic)' within \(timeout)"
                + (lastError.map { " (last broker error: \($0))" } ?? ""),
            fix: "check that the brokers in `bootstrap.servers` are reachable")
    }

    /// Maps a librdkafka error for a message to `topic` to an error that says what to change.
    fileprivate static func delivery(
        _ code: rd_kafka_resp_err_t, topic: String, kafka: OpaquePointer?
    ) -> KafkaSinkError {
        let name = errorName(code)
        let what = "message to topic '\(topic)' failed: \(String(cString: rd_kafka_err2str(code)))"
        // A fatal error fails the messages with the error that caused it (e.g. OUT_OF_ORDER_SEQUENCE_NUMBER),
        // not with _FATAL; only the handle's fatal state tells that this producer can never deliver again.
        if code != RD_KAFKA_RESP_ERR__FATAL, let reason = fatalReason(kafka) {
            return KafkaSinkError(
                .fatal, problem: what + " (the producer hit a fatal error: \(reason))",
                fix: "restart the sink with a new producer; unacknowledged messages will be sent again", rdKafkaErrorName: name)
        }
        switch code {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
            return KafkaSinkError(
                .messageTooLarge, problem: what,
                fix: "raise `message.max.bytes` in the Kafka properties (and keep it within the broker's "
                    + "`message.max.bytes` and the topic's `max.message.bytes`), or keep such large rows out of this topic",
                property: "message.max.bytes", rdKafkaErrorName: name)
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT:
            return KafkaSinkError(
                .deliveryTimedOut, problem: what,
                fix: "check that the brokers in `bootstrap.servers` are reachable and the topic has a leader; "
                    + "raise `message.timeout.ms` to ride out longer outages",
                property: "message.timeout.ms", rdKafkaErrorName: name)
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return KafkaSinkError(
                .unknownTopic, problem: what,
                fix: "create topic '\(topic)' on the cluster, or enable automatic topic creation", rdKafkaErrorName: name)
        case RD_KAFKA_RESP_ERR__FATAL:
            return KafkaSinkError(
                .fatal, problem: what + (fatalReason(kafka).map { " (\($0))" } ?? ""),
                fix: "restart the sink with a new producer; unacknowledged messages will be sent again", rdKafkaErrorName: name)
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return KafkaSinkError(
                .closed, problem: what + " (purged when the producer closed)",
                fix: "allow close() more time, or check that the brokers are reachable", rdKafkaErrorName: name)
        default:
            return KafkaSinkError(
                .deliveryFailed, problem: what,
                fix: "check the broker's logs and the topic's settings; the batch can be retried", rdKafkaErrorName: name)
        }
    }
}

private func errorName(_ code: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2name(code)) }

/// The underlying reason of a fatal idempotent-producer error, if there is one.
private func fatalReason(_ kafka: OpaquePointer?) -> String? {
    guard let kafka else { return nil }
    let (code, reason) = withErrorBuffer { rd_kafka_fatal_error(kafka, $0, $1) }
    return code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : "\(errorName(code)): \(reason)"
}

/// Calls `body` with a zeroed error-string buffer and returns its result and the string.
private func withErrorBuffer<R>(_ body: (UnsafeMutablePointer<CChar>, Int) -> R) -> (R, String) {
    let capacity = 512
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
    buffer.initialize(repeating: 0, count: capacity)
    defer { buffer.deallocate() }
    let result = body(buffer, capacity)
    return (result, String(cString: buffer))
}

/// Calls `body` with C strings of `strings`, valid during the call.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>]) -> R) -> R {
    var joined: [CChar] = []  // "a\0b\0": one allocation for all of them
    var offsets: [Int] = []
    for string in strings {
        offsets.append(joined.count)
        joined.append(contentsOf: string.utf8CString)
    }
    return joined.withUnsafeBufferPointer { buffer in body(offsets.map { buffer.baseAddress! + $0 }) }
}

/// Where an empty key or value points when the batch's buffer is empty: librdkafka reads a null pointer as a
/// null value, so an empty one needs some valid address.
private nonisolated(unsafe) let emptyBytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))

extension Duration {
    /// Milliseconds, clamped to what librdkafka's `int` timeouts accept.
    var clampedMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let milliseconds = seconds.multipliedReportingOverflow(by: 1000)
        guard !milliseconds.overflow else { return seconds < 0 ? 0 : .max }
        return Int32(clamping: max(0, milliseconds.partialValue + attoseconds / 1_000_000_000_000_000))
    }
}

/// Logger metadata keys used by this module.
enum LogKey {
    static let facility = "rdkafka.facility"
    static let rdKafkaError = "rdkafka.error"
    static let reason = "rdkafka.reason"
    static let outstanding = "kafka.outstanding"
}
