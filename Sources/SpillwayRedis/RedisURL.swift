import SpillwayCore

/// `redis://[[user]:password@]host[:port][/db]`, parsed. `description` never shows the password.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    /// Default: 6379.
    public var port: Int
    /// The logical database SELECTed after connecting. Default: 0.
    public var database: Int
    /// An ACL user (Redis 6+); nil authenticates as `default`.
    public var username: String?
    public var password: String?

    public init(host: String, port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    /// Parses `text`, replacing `${NAME}` with environment variable NAME in each part (after splitting, so
    /// a password from the environment may hold `@`, `:` or `/`; it is used as is, not percent-decoded).
    /// Errors name `key`.
    public init(parsing text: String, environment: [String: String] = [:], key: String) throws(ConfigError) {
        func fail(_ problem: String, _ fix: String) -> ConfigError { ConfigError(key: key, problem: problem, fix: fix) }
        func expand(_ part: Substring) throws(ConfigError) -> String {
            guard part.contains("${") else { return Self.percentDecoded(part) }
            return try EnvironmentSubstitution.substitute(String(part), environment: environment, key: key)
        }
        let form = "write redis://[:password@]host[:port][/db], e.g. redis://127.0.0.1:6379/0"
        guard let schemeEnd = text.range(of: "://") else {
            throw fail("'\(ConnectionString.redacting(text))' is not a redis:// URL", form)
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        switch scheme {
        case "redis": break
        case "rediss":
            throw fail("rediss:// (TLS) is not supported: Debian's hiredis 0.14 has no TLS",
                       "reach Redis over a TLS tunnel (stunnel, spiped) and point redis:// at its local end")
        default:
            throw fail("the URL's scheme is '\(scheme)://', not redis://", form)
        }
        var rest = text[schemeEnd.upperBound...]
        if rest.contains("?") || rest.contains("#") {
            throw fail("URL parameters are not supported", form)
        }
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<pathStart]
        rest = rest[pathStart...]
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = try expand(userInfo[..<colon])
                username = user.isEmpty ? nil : user
                password = try expand(userInfo[userInfo.index(after: colon)...])
            } else {
                // redis://secret@host: a lone user-info part is the password, as in redis-cli -u.
                password = try expand(userInfo)
            }
            if password?.isEmpty == true { password = nil }
        }
        let hostPort = try expand(authority)
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw fail("the IPv6 address in the URL lacks its ']'", form)
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw fail("unexpected text after the IPv6 address", form)
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw fail("the URL names no host", form) }
        port = 6379
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number) else {
                throw fail("'\(portText)' is not a port number", form)
            }
            port = number
        }
        database = 0
        let path = try expand(rest.drop { $0 == "/" })
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw fail("'/\(path)' is not a database number", "end the URL with /0, /1, ...")
            }
            database = number
        }
    }

    public var description: String {
        var auth = ""
        if username != nil || password != nil {
            auth = (username ?? "") + (password != nil ? ":***" : "") + "@"
        }
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "redis://\(auth)\(shownHost):\(port)/\(database)"
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
               let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
