/// The records of one batch with all their bytes in one buffer: building a batch of thousands of records
/// allocates a handful of arrays instead of several per record, and librdkafka copies each record out of the
/// buffer when it is enqueued.
struct KafkaRecordBatch: Sendable {
    struct Record: Sendable, Hashable {
        /// Index into `topics`.
        var topic: Int
        /// Range of `bytes`; nil: no key.
        var key: Range<Int>?
        /// Range of `bytes`; nil: a null value (a tombstone), which is not an empty value.
        var value: Range<Int>?
        /// Range of `headers`.
        var headers: Range<Int>
    }

    struct Header: Sendable, Hashable {
        /// Index into `headerNames`.
        var name: Int
        /// Range of `bytes`.
        var value: Range<Int>
    }

    private(set) var topics: [String] = []
    private(set) var headerNames: [String]
    private(set) var bytes: [UInt8] = []
    private(set) var records: [Record] = []
    private(set) var headers: [Header] = []
    private var topicIndex: [String: Int] = [:]

    init(headerNames: [String] = [], capacity: Int = 0) {
        self.headerNames = headerNames
        records.reserveCapacity(capacity)
        headers.reserveCapacity(capacity * headerNames.count)
        bytes.reserveCapacity(capacity * 384)
    }

    /// The batch of `messages`, in order.
    init(_ messages: [KafkaOutgoingMessage]) {
        self.init(capacity: messages.count)
        var names: [String: Int] = [:]
        for message in messages {
            let topic = index(ofTopic: message.topic)
            let key = message.key.map { key in append { $0.append(contentsOf: key) } }
            let value = message.value.map { value in append { $0.append(contentsOf: value) } }
            let first = headers.count
            for header in message.headers {
                let name: Int
                if let known = names[header.name] {
                    name = known
                } else {
                    name = headerNames.count
                    headerNames.append(header.name)
                    names[header.name] = name
                }
                headers.append(Header(name: name, value: append { $0.append(contentsOf: header.value) }))
            }
            records.append(Record(topic: topic, key: key, value: value, headers: first..<headers.count))
        }
    }

    var count: Int { records.count }

    /// The index of `topic` in `topics`, adding it if new.
    mutating func index(ofTopic topic: String) -> Int {
        if let known = topicIndex[topic] { return known }
        topics.append(topic)
        topicIndex[topic] = topics.count - 1
        return topics.count - 1
    }

    /// Appends what `write` writes to the buffer and returns where it went.
    mutating func append(_ write: (inout [UInt8]) -> Void) -> Range<Int> {
        let start = bytes.count
        write(&bytes)
        return start..<bytes.count
    }

    /// Appends a header of `record` (the next record to be added: call before `addRecord`).
    mutating func addHeader(name: Int, _ write: (inout [UInt8]) -> Void) {
        headers.append(Header(name: name, value: append(write)))
    }

    /// Adds a record whose headers are those added since `firstHeader` (`headers.count` before them).
    mutating func addRecord(topic: Int, key: Range<Int>?, value: Range<Int>?, firstHeader: Int) {
        records.append(Record(topic: topic, key: key, value: value, headers: firstHeader..<headers.count))
    }

    /// Adds a record with the same topic, key and headers as record `index`, and a null value.
    mutating func addTombstone(after index: Int) {
        var tombstone = records[index]
        tombstone.value = nil
        records.append(tombstone)
    }

    /// The records as messages (for tests and error messages; producing reads the buffer directly).
    var messages: [KafkaOutgoingMessage] {
        records.map { record in
            KafkaOutgoingMessage(
                topic: topics[record.topic], key: record.key.map { Array(bytes[$0]) }, value: record.value.map { Array(bytes[$0]) },
                headers: headers[record.headers].map { KafkaHeader(headerNames[$0.name], Array(bytes[$0.value])) })
        }
    }
}
