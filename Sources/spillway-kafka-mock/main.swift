// spillway-kafka-mock: a librdkafka mock Kafka cluster for integration tests.
//
// Prints the bootstrap list as the first line of stdout, then serves until SIGTERM, SIGINT,
// stdin EOF or `quit`. Reads one command per line on stdin and answers `ok` or `error: ...`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import SpillwayKafka

let usage = """
    usage: spillway-kafka-mock [--brokers N] [--topic NAME:PARTITIONS[:REPLICATION]]...

      --brokers N     number of mock brokers, ids 1...N (default 3)
      --topic T:P[:R] create topic T with P partitions (replication R, default min(3, N));
                      repeatable. Topics not created here are auto-created with 4
                      partitions when a client allows it (producers do by default).

    stdin commands (one per line; each answered with `ok` or `error: REASON`):
      down ID | up ID           take broker ID down (disconnect, refuse connections) / up
      down-all | up-all         all brokers down / up
      topic NAME PARTITIONS [R] create a topic
      quit                      exit (as does stdin EOF, SIGTERM or SIGINT)
    """

func printError(_ message: String) {
    var text = "spillway-kafka-mock: \(message)\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    printError("\(message)\n\(usage)")
    exit(2)
}

/// Prints `line` and flushes at once: the reader is a test waiting for it.
func reply(_ line: String) {
    print(line)
    fflush(nil)
}

var brokers = 3
var topics: [(name: String, partitions: Int, replication: Int?)] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--brokers":
        guard let value = arguments.popFirst().flatMap(Int.init), value > 0 else { fail("--brokers needs a positive number") }
        brokers = value
    case "--topic":
        let parts = arguments.popFirst()?.split(separator: ":", omittingEmptySubsequences: false) ?? []
        guard (2...3).contains(parts.count), !parts[0].isEmpty, let partitions = Int(parts[1]),
            parts.count == 2 || Int(parts[2]) != nil
        else { fail("--topic needs NAME:PARTITIONS[:REPLICATION]") }
        topics.append((String(parts[0]), partitions, parts.count == 3 ? Int(parts[2]) : nil))
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        fail("unknown argument '\(argument)'")
    }
}

let cluster: KafkaMockCluster
do {
    cluster = try KafkaMockCluster(brokers: brokers)
    for topic in topics { try cluster.createTopic(topic.name, partitions: topic.partitions, replicationFactor: topic.replication) }
} catch {
    printError("\(error)")
    exit(1)
}

/// Runs one stdin command; returns false for `quit`.
func run(_ line: String) -> Bool {
    let words = line.split(separator: " ").map(String.init)
    do {
        switch (words.first, words.count) {
        case (nil, _): return true
        case ("down", 2): try cluster.setBrokerDown(brokerID(words[1]))
        case ("up", 2): try cluster.setBrokerUp(brokerID(words[1]))
        case ("down-all", 1): try cluster.setAllBrokersDown()
        case ("up-all", 1): try cluster.setAllBrokersUp()
        case ("topic", 3), ("topic", 4):
            guard let partitions = Int(words[2]) else { throw CommandError("PARTITIONS must be a number") }
            try cluster.createTopic(words[1], partitions: partitions, replicationFactor: words.count == 4 ? Int(words[3]) : nil)
        case ("quit", 1):
            reply("ok")
            return false
        default: throw CommandError("unknown command '\(line)'")
        }
        reply("ok")
    } catch {
        reply("error: \(error)")
    }
    return true
}

struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func brokerID(_ text: String) throws -> Int32 {
    guard let id = Int32(text) else { throw CommandError("broker id '\(text)' is not a number") }
    return id
}

let done = DispatchSemaphore(value: 0)
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signalSources = [SIGTERM, SIGINT].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler { @Sendable in done.signal() }  // @Sendable: runs off the main actor
    source.resume()
    return source
}
DispatchQueue.global().async {
    while let line = readLine(), run(line) {}
    done.signal()
}

reply(cluster.bootstrapServers)
done.wait()
withExtendedLifetime(signalSources) {}
