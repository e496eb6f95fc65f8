/// `${NAME}` in a configuration value, replaced by the environment variable NAME: how a secret (a Redis
/// password, a webhook signing secret, a Kafka SASL password) stays out of the YAML. Every sink's secrets
/// go through this one function, so the rules and the errors are the same everywhere.
public enum EnvironmentSubstitution {
    public static func substitute(_ text: String, environment: [String: String], key: String) throws(ConfigError) -> String {
        var out = ""
        var rest = text[...]
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                throw ConfigError(key: key, problem: "has a '${' without its closing '}'", fix: "write ${NAME} to read the variable NAME")
            }
            let name = String(rest[start.upperBound..<close])
            guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
                  name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw ConfigError(key: key, problem: "'${\(name)}' is not an environment variable name",
                                  fix: "use letters, digits and _, e.g. ${KAFKA_PASSWORD}")
            }
            guard let value = environment[name] else {
                throw ConfigError(key: key, problem: "reads ${\(name)}, which is not set in the environment",
                                  fix: "export \(name) before starting Spillway")
            }
            guard !value.isEmpty else {
                throw ConfigError(key: key, problem: "reads ${\(name)}, which is empty in the environment",
                                  fix: "export \(name) with its value before starting Spillway")
            }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }
}
