import Foundation
import SpillwayTestSupport
import Testing

/// What the tests against a mock cluster need besides this package: kcat, an independent consumer.
enum KafkaTestEnvironment {
    /// Set by the test command: a missing tool is then a failure, never a silent skip.
    static var isIntegrationRequired: Bool { ProcessInfo.processInfo.environment["SPILLWAY_REQUIRE_INTEGRATION"] == "1" }

    static var canRun: Bool { isKcatInstalled || isIntegrationRequired }
}

/// Kafka's default partitioner for keyed records (the Java client's, and librdkafka's
/// `murmur2_random`): `toPositive(murmur2(key)) % partitions`.
func expectedPartition(forKey key: [UInt8], partitions: Int) -> Int32 {
    Int32((UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff) % UInt32(partitions))
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(_ key: [UInt8]) -> Int32 {
    let m: UInt32 = 0x5bd1_e995
    var h: UInt32 = 0x9747_b28c ^ UInt32(key.count)
    let whole = key.count & ~3
    for i in stride(from: 0, to: whole, by: 4) {
        var k = UInt32(key[i]) | UInt32(key[i + 1]) << 8 | UInt32(key[i + 2]) << 16 | UInt32(key[i + 3]) << 24
        k &*= m
        k ^= k >> 24
        k &*= m
        h &*= m
        h ^= k
    }
    let tail = key.count & 3
    if tail == 3 { h ^= UInt32(key[whole + 2]) << 16 }
    if tail >= 2 { h ^= UInt32(key[whole + 1]) << 8 }
    if tail >= 1 {
        h ^= UInt32(key[whole])
        h &*= m
    }
    h ^= h >> 13
    h &*= m
    h ^= h >> 15
    return Int32(bitPattern: h)
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
