/// Turns the user's librdkafka properties into the ones the producer is created with.
///
/// Pure, so the at-least-once rules are testable without librdkafka.
enum ProducerProperties {
    /// Forced for at-least-once delivery; a user may repeat them but not weaken them.
    static let required: KeyValuePairs<String, String> = ["enable.idempotence": "true", "acks": "all"]

    /// Defaults a user may override. `murmur2_random` matches the Java client's partitioner, so
    /// keyed records land where Kafka Streams and JVM producers expect them.
    static let defaults: [String: String] = ["partitioner": "murmur2_random"]

    /// `defaults`, then `user`, then `required`, in a stable order (name-sorted within each group).
    static func effective(_ user: [String: String]) throws(KafkaSinkError) -> [(name: String, value: String)] {
        if let value = user["enable.idempotence"], value.lowercased() != "true" {
            throw KafkaSinkError(
                .invalidConfiguration,
                problem: "property 'enable.idempotence' is set to '\(value)', which would allow lost or reordered messages",
                fix: "remove 'enable.idempotence' from the Kafka properties (Spillway always enables it)",
                property: "enable.idempotence")
        }
        for name in ["acks", "request.required.acks"] {
            if let value = user[name], !["all", "-1"].contains(value.lowercased()) {
                throw KafkaSinkError(
                    .invalidConfiguration,
                    problem: "property '\(name)' is set to '\(value)', which would acknowledge messages before all in-sync replicas have them",
                    fix: "remove '\(name)' from the Kafka properties or set it to 'all'",
                    property: name)
            }
        }
        let defaulted = defaults.filter { user[$0.key] == nil }.sorted { $0.key < $1.key }
        let overridable = user.filter { name, _ in !required.contains { $0.key == name } }.sorted { $0.key < $1.key }
        return (defaulted + overridable + required).map { (name: $0.key, value: $0.value) }
    }

    /// Whether a property's value may be a secret and must never be shown.
    static func isSensitive(_ name: String) -> Bool {
        let name = name.lowercased()
        return ["password", "secret", "sasl", "ssl.key"].contains { name.contains($0) }
    }

    /// `text` (a librdkafka message) with the value of every sensitive property replaced.
    static func redact(_ text: String, values properties: [String: String]) -> String {
        properties
            .filter { isSensitive($0.key) && !$0.value.isEmpty }
            .map(\.value)
            .sorted { $0.count > $1.count }  // longest first, so a value containing another is hidden whole
            .reduce(text) { $0.replacing($1, with: "[redacted]") }
    }
}
