/// An error from the Kafka sink.
///
/// `description` says what failed and what to change, and never contains the value of a
/// property that may hold a secret; `debugDescription` adds the code, the property name,
/// librdkafka's error name and the source location.
public struct KafkaSinkError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidConfiguration, clientCreation, messageTooLarge, deliveryTimedOut
            case unknownTopic, invalidTopic, deliveryFailed, notEnqueued, fatal, closed, flushTimedOut, mockCluster
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A property was unknown, had an invalid value or would weaken delivery guarantees.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// librdkafka refused to create the client (usually conflicting properties).
        public static let clientCreation = Code(.clientCreation)
        /// A message exceeded `message.max.bytes` (client) or the broker's limit.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// A message was not acknowledged within `message.timeout.ms`.
        public static let deliveryTimedOut = Code(.deliveryTimedOut)
        /// The topic or partition does not exist on the cluster.
        public static let unknownTopic = Code(.unknownTopic)
        /// An event's topic template rendered a name Kafka does not allow (e.g. too long).
        public static let invalidTopic = Code(.invalidTopic)
        /// The broker or client rejected a message for another reason.
        public static let deliveryFailed = Code(.deliveryFailed)
        /// A message was not handed to librdkafka because an earlier one in its batch failed.
        public static let notEnqueued = Code(.notEnqueued)
        /// The idempotent producer hit a fatal error and can no longer deliver.
        public static let fatal = Code(.fatal)
        /// The client was closed before the message could be delivered.
        public static let closed = Code(.closed)
        /// `flush(timeout:)` or `close(timeout:)` ran out of time with messages outstanding.
        public static let flushTimedOut = Code(.flushTimedOut)
        /// The test-support mock cluster failed.
        public static let mockCluster = Code(.mockCluster)

        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// What failed, in words an operator can act on.
    public private(set) var problem: String
    /// What to change so it does not fail again.
    public private(set) var fix: String
    /// The librdkafka property the error is about, if any (a name, never a value).
    public let property: String?
    /// librdkafka's name for the error (`rd_kafka_err2name`), e.g. `MSG_SIZE_TOO_LARGE`.
    public let rdKafkaErrorName: String?
    /// For a failed `send`, the index in its batch of the message this error is about: the first that
    /// failed.
    public private(set) var messageIndex: Int?
    /// For a failed `send` of several messages: how many failed, and how many were sent.
    public private(set) var batchFailures: (failed: Int, of: Int)?
    private let location: String

    init(
        _ code: Code, problem: String, fix: String, property: String? = nil,
        rdKafkaErrorName: String? = nil, fileID: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.problem = problem
        self.fix = fix
        self.property = property
        self.rdKafkaErrorName = rdKafkaErrorName
        self.location = "\(fileID):\(line)"
    }

    public var description: String {
        let summary = batchFailures.map { "\($0.failed) of \($0.of) messages were not delivered; first failure: " } ?? ""
        return "Kafka sink: \(summary)\(problem). Fix: \(fix)"
    }

    public var debugDescription: String {
        var parts = ["code: \(code)"]
        if let property { parts.append("property: \(property)") }
        if let rdKafkaErrorName { parts.append("rdkafka: \(rdKafkaErrorName)") }
        if let messageIndex { parts.append("message: \(messageIndex)") }
        parts += ["problem: \(problem)", "fix: \(fix)", "at: \(location)"]
        return "KafkaSinkError(\(parts.joined(separator: ", ")))"
    }

    /// The same error, about the message at `index` of its batch.
    func atMessage(_ index: Int) -> KafkaSinkError {
        var copy = self
        copy.messageIndex = index
        return copy
    }

    /// The same error as the first of `failed` failures among `count` messages.
    func first(of failed: Int, in count: Int) -> KafkaSinkError {
        var copy = self
        copy.batchFailures = (failed, count)
        return copy
    }

    /// The same error with its problem rewritten, e.g. to name the event a message carried.
    public func withProblem(_ transform: (String) -> String) -> KafkaSinkError {
        var copy = self
        copy.problem = transform(problem)
        return copy
    }

    /// The same error with another fix, e.g. in the words of the configuration the user wrote.
    public func withFix(_ fix: String) -> KafkaSinkError {
        var copy = self
        copy.fix = fix
        return copy
    }
}
