import Foundation

/// What one HTTP answer means for delivery. Pure, so the rules are tested without a server.
public enum WebhookOutcome: Sendable, Equatable {
    /// 2xx: acknowledged.
    case delivered
    /// 408, 429, 5xx (and, outside this function, timeouts and connection errors): try again, after
    /// `after` when the server said so in `Retry-After`.
    case retry(after: Duration?)
    /// Any other status (other 4xx, and 1xx/3xx: redirects are not followed): this event will not be
    /// accepted as it is; it is dead-lettered (or blocks the sink with `on_failure: block`).
    case reject

    public static func classify(status: Int, retryAfter: String?, now: Date = Date()) -> WebhookOutcome {
        switch status {
        case 200..<300: return .delivered
        case 408, 429, 500..<600: return .retry(after: retryAfter.flatMap { RetryAfter.parse($0, now: now) })
        default: return .reject
        }
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994
/// 08:49:37 GMT`). Capped at `maximum` so a wrong header cannot park a sink for days; a date in the past
/// means now.
public enum RetryAfter {
    public static let maximum: Duration = .seconds(600)

    public static func parse(_ text: String, now: Date = Date()) -> Duration? {
        let value = text.trimmingCharacters(in: .whitespaces)
        if !value.isEmpty, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber) {
            guard let seconds = Int64(value) else { return maximum }
            return min(.seconds(seconds), maximum)
        }
        guard let date = httpDate(value) else { return nil }
        let seconds = date - now.timeIntervalSince1970
        guard seconds > 0 else { return .zero }
        return min(.milliseconds(Int64((seconds * 1000).rounded(.up))), maximum)
    }

    /// IMF-fixdate to Unix seconds, without locale-dependent formatters.
    static func httpDate(_ text: String) -> Double? {
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let day = Int(parts[1]), let year = Int(parts[3]),
              let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                .firstIndex(of: String(parts[2])).map({ $0 + 1 }) else { return nil }
        let time = parts[4].split(separator: ":").compactMap { Int($0) }
        guard time.count == 3, (1...31).contains(day), (0...23).contains(time[0]), (0...59).contains(time[1]),
              (0...60).contains(time[2]) else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + time[0] * 3600 + time[1] * 60 + time[2])
    }
}
