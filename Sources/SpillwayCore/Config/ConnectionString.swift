/// Connection strings carry passwords; everything that logs or prints one goes through here.
public enum ConnectionString {
    /// Whether `url` names a pooled endpoint by its host: Neon's `-pooler` hosts (`ep-x-pooler.region.aws.neon.tech`)
    /// front PgBouncer in transaction mode, which takes no replication connection.
    public static func namesPooledHost(_ url: String) -> Bool {
        url.lowercased().contains("-pooler.")
    }

    /// `postgres://u:secret@h/db` → `postgres://u:***@h/db`; `password=secret` (keyword form or URL query)
    /// → `password=***`.
    public static func redacting(_ text: String) -> String {
        var result = text
        if let schemeEnd = result.range(of: "://") {
            let rest = result[schemeEnd.upperBound...]
            // libpq reads user info up to the last '@' before the path: a raw '?' or '#' may be password.
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"),
               let colon = rest[..<at].firstIndex(of: ":") {
                result.replaceSubrange(result.index(after: colon)..<at, with: "***")
            }
        }
        return redactingPasswordParameter(result)
    }

    /// `password=x` in the keyword form (blanks allowed around `=`, any white space between parameters)
    /// or as a URL query parameter.
    private static func redactingPasswordParameter(_ text: String) -> String {
        let chars = Array(text)
        var output = ""
        var i = 0
        let keyword = Array("password")
        while i < chars.count {
            let startsParameter = i == 0 || chars[i - 1].isWhitespace || chars[i - 1] == "?" || chars[i - 1] == "&"
            if startsParameter, i + keyword.count <= chars.count, Array(chars[i..<i + keyword.count]) == keyword {
                var j = i + keyword.count
                while j < chars.count, chars[j] == " " || chars[j] == "\t" { j += 1 }
                if j < chars.count, chars[j] == "=" {
                    j += 1
                    while j < chars.count, chars[j] == " " || chars[j] == "\t" { j += 1 }
                    var end = j
                    if end < chars.count, chars[end] == "'" {
                        end += 1
                        while end < chars.count, chars[end] != "'" {
                            if chars[end] == "\\" { end += 1 }
                            end += 1
                        }
                        end = min(end + 1, chars.count)
                    } else {
                        while end < chars.count, !chars[end].isWhitespace, chars[end] != "&" { end += 1 }
                    }
                    output += "password=***"
                    i = end
                    continue
                }
            }
            output.append(chars[i])
            i += 1
        }
        return output
    }
}
