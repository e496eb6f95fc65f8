/// Connection strings carry passwords; everything that logs or prints one goes through here.
public enum ConnectionString {
    /// `postgres://u:secret@h/db` → `postgres://u:***@h/db`; `password=secret` (keyword form or URL query)
    /// → `password=***`.
    public static func redacting(_ text: String) -> String {
        var result = text
        if let schemeEnd = result.range(of: "://") {
            let rest = result[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"),
               let colon = rest[..<at].firstIndex(of: ":") {
                result.replaceSubrange(result.index(after: colon)..<at, with: "***")
            }
        }
        return redactingPasswordParameter(result)
    }

    private static func redactingPasswordParameter(_ text: String) -> String {
        var output = ""
        var rest = text[...]
        while let range = rest.range(of: "password=") {
            let before = rest[..<range.lowerBound]
            let isParameterStart = before.isEmpty || [" ", "?", "&"].contains(before.last!)
            output += rest[..<range.upperBound]
            rest = rest[range.upperBound...]
            guard isParameterStart else { continue }
            var end = rest.startIndex
            if rest.first == "'" {
                end = rest.index(after: end)
                while end < rest.endIndex, rest[end] != "'" {
                    if rest[end] == "\\" { end = rest.index(after: end) }
                    if end < rest.endIndex { end = rest.index(after: end) }
                }
                if end < rest.endIndex { end = rest.index(after: end) }
            } else {
                while end < rest.endIndex, rest[end] != " ", rest[end] != "&" { end = rest.index(after: end) }
            }
            output += "***"
            rest = rest[end...]
        }
        return output + rest
    }
}
