import Logging
import SpillwayCore
import Synchronization

/// Sends change events to Kafka: one record per event, keyed by the row's primary key, on an idempotent
/// producer with `acks=all`.
///
/// A batch's acknowledgement completes only when the cluster acknowledged every record of it, and fails if
/// any failed; the pipeline then delivers that batch and all later ones again, so a record may be written
/// twice (only records of batches not yet checkpointed), never zero times. Records of one key go to one
/// partition in the order they were given, and the idempotent producer keeps that order across its own
/// retries and across batches in flight together. A record is never given up for taking long (an outage
/// only stalls the batch, and is reported): see `producerProperties`.
public final class KafkaSink: PipelinedChangeSink, ChangeSinkValidating {
    public let name: String
    private let settings: KafkaSinkSettings
    /// The record value for each event: Spillway's event, or another `format`.
    private let encoder: EventEncoder
    private let properties: [String: String]
    private let logger: Logger
    /// Replaced after a fatal producer error (the idempotent producer cannot continue after one).
    private let producer: Mutex<KafkaProducerClient>

    /// Creates the producer; nothing is sent until the first `deliver`. Throws `invalidConfiguration` or
    /// `clientCreation` for properties librdkafka refuses.
    public init(name: String, settings: KafkaSinkSettings, encoder: EventEncoder = .spillway, logger: Logger) throws(KafkaSinkError) {
        self.encoder = encoder
        self.name = name
        self.settings = settings
        self.properties = Self.producerProperties(settings)
        self.logger = logger
        self.producer = Mutex(try KafkaProducerClient(properties: properties, logger: logger))
        logger.info("Kafka producer created", metadata: [
            "brokers": "\(settings.brokers.joined(separator: ","))", "topic": "\(settings.topic)",
        ])
    }

    /// Checks the settings' librdkafka properties as `init` would, without creating a producer (so nothing
    /// connects anywhere): for start-up validation of commands that do not deliver.
    public static func validate(_ settings: KafkaSinkSettings) throws(KafkaSinkError) {
        try KafkaProducerClient.validate(properties: producerProperties(settings))
    }

    /// Renders the topic of every captured table (each operation's, when the template uses `{op}`; tables
    /// whose topic depends on `{tenant}` or a row column are left to the first record) and asks the cluster about them: a
    /// name Kafka refuses is a configuration error; a topic the cluster does not have, or a cluster that
    /// does not answer, is logged and delivery goes on (it retries until the topic exists).
    public func validate(tables: [TableInfo]) async throws {
        var topics: [String] = []
        for table in tables {
            let template = settings.template(schema: table.schema, table: table.name)
            guard !template.fields.contains(.tenant), !template.fields.contains(.route), !template.readsRow else { continue }
            let operations: [ChangeEvent.Operation] = template.fields.contains(.op) ? [.insert, .update, .delete, .truncate, .read] : [.insert]
            for op in operations {
                let sample = ChangeEvent(id: "", op: op, schema: table.schema, table: table.name, position: "")
                do {
                    let topic = try Self.topic(for: sample, settings: settings)
                    if !topics.contains(topic) { topics.append(topic) }
                } catch {
                    throw ConfigError(key: "sinks[] '\(name)' topic", problem: error.problem, fix: error.fix)
                }
            }
        }
        let client = producer.withLock { $0 }
        let problems = await client.prepare(topics: topics, timeout: .seconds(5))
        for (topic, problem) in problems.sorted(by: { $0.key < $1.key }) {
            logger.warning("Kafka topic not ready; its records wait and are retried until it is", metadata: [
                "topic": "\(topic)", "error": "\(problem)",
            ])
        }
    }

    /// Hands the batch to the producer, which builds its records and enqueues them behind those of earlier
    /// batches off the caller's task; the acknowledgement completes when the cluster stored every record
    /// (see `KafkaProducerClient.enqueue`).
    public func submit(_ batch: [ChangeEvent]) async throws -> SinkAcknowledgement {
        guard !batch.isEmpty else { return .immediate }
        let client = producer.withLock { $0 }
        let settings = settings, encoder = encoder
        let pending = client.enqueue { () throws(KafkaSinkError) -> KafkaRecordBatch in try Self.records(for: batch, settings: settings, encoder: encoder).batch }
        return SinkAcknowledgement {
            do throws(KafkaSinkError) {
                try await self.awaitDelivery(of: pending, batch: batch, client: client)
            } catch {
                if error.code == .fatal || client.hasFatalError { await self.replaceProducer(client) }
                throw self.describe(error, batch: batch)
            }
        } abandon: {
            client.abandonOutstanding()
        }
    }

    /// Waits for the cluster to store every record of the batch, however long that takes (records never
    /// time out: see `producerProperties`), and reports each `timeout` that passes without it as a stall
    /// (the pipeline shows it as `status`'s last error) naming the brokers and librdkafka's last complaint.
    private func awaitDelivery(of pending: KafkaPendingDelivery, batch: [ChangeEvent], client: KafkaProducerClient) async throws(KafkaSinkError) {
        let outcome = await withTaskGroup(of: Result<Void, KafkaSinkError>?.self) { group in
            group.addTask {
                do throws(KafkaSinkError) {
                    _ = try await pending.delivered()
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                await self.reportStalls(of: batch, client: client)
                return nil
            }
            var outcome: Result<Void, KafkaSinkError> = .success(())
            while let next = await group.next() {
                guard let next else { continue }
                outcome = next
                group.cancelAll()
            }
            return outcome
        }
        try outcome.get()
    }

    /// Until cancelled: every `timeout`, logs and reports that the batch is still unacknowledged.
    private func reportStalls(of batch: [ChangeEvent], client: KafkaProducerClient) async {
        var waited = Duration.zero
        while (try? await Task.sleep(for: settings.timeout)) != nil {
            waited += settings.timeout
            let reason = client.lastClientError.map { "; last broker error: \($0)" } ?? ""
            let first = batch.first.map { "event \($0.id) (\($0.qualifiedTable))" } ?? "a batch"
            let problem = "\(first), first of a batch of \(batch.count), not acknowledged after \(waited) by brokers "
                + "\(settings.brokers.joined(separator: ","))\(reason); they are kept and retried until the cluster stores them"
            logger.warning("Kafka delivery stalled", metadata: ["sink": "\(name)", "error": "\(problem)"])
            await SinkFailureReport.report(problem)
        }
    }

    /// A failed record makes the producer refuse later batches (so none of them overtakes it); the pipeline's
    /// next session, which sends everything after the checkpoint again, lifts that.
    public func resume() {
        producer.withLock { $0 }.resume()
    }

    public func close() async throws {
        try await producer.withLock { $0 }.close(timeout: .seconds(10))
    }

    /// Names the event behind the failed record.
    private func describe(_ error: KafkaSinkError, batch: [ChangeEvent]) -> KafkaSinkError {
        var described = error
        // Records are rebuilt only on this path: they map the failed record back to its event.
        if let index = error.messageIndex, let records = try? Self.records(for: batch, settings: settings, encoder: encoder),
           records.eventIndices.indices.contains(index) {
            let event = batch[records.eventIndices[index]]
            described = described.withProblem { "event \(event.id) (\(event.qualifiedTable)): \($0)" }
        }
        return described
    }

    /// A fatal error (e.g. the broker lost the producer's sequence state) leaves the idempotent producer
    /// unusable; the next attempt gets a new one. If creating it fails, the old one stays and the next
    /// attempt fails the same way, which `status` shows.
    private func replaceProducer(_ failed: KafkaProducerClient) async {
        do {
            let fresh = try KafkaProducerClient(properties: properties, logger: logger)
            let replaced = producer.withLock { current -> Bool in
                guard current === failed else { return false }
                current = fresh
                return true
            }
            if replaced {
                logger.warning("Kafka producer replaced after a fatal error")
                try? await failed.close(timeout: .seconds(1))
            } else {
                try? await fresh.close(timeout: .seconds(1))
            }
        } catch {
            logger.error("could not replace the failed Kafka producer", metadata: ["error": "\(error)"])
        }
    }
}
