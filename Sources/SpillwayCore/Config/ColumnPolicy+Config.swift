extension ColumnPolicy {
    /// `columns: {include: [...]} | {exclude: [...]}` and `mask: {col: hash | redact}` of one
    /// `source.tables` entry. Column names are matched exactly, as PostgreSQL stores them.
    static func parse(_ r: inout ConfigReader) throws(ConfigError) -> ColumnPolicy {
        var policy = ColumnPolicy()
        if var columns = try r.child("columns") {
            try columns.rejectUnknownKeys(known: ["include", "exclude"])
            let include = try columns.stringList("include"), exclude = try columns.stringList("exclude")
            switch (include, exclude) {
            case (let names?, nil):
                guard !names.isEmpty else {
                    throw ConfigError(key: columns.keyPath("include"), problem: "is empty, so no column would be sent",
                                      fix: "list the columns to send, or leave the table out of source.tables")
                }
                policy.columns = .include(try unique(names, key: columns.keyPath("include")))
            case (nil, let names?):
                policy.columns = names.isEmpty ? .all : .exclude(try unique(names, key: columns.keyPath("exclude")))
            case (nil, nil):
                throw ConfigError(key: r.keyPath("columns"), problem: "needs include or exclude",
                                  fix: "write `columns: {exclude: [ssn]}` or `columns: {include: [id, name]}`")
            case (_?, _?):
                throw ConfigError(key: r.keyPath("columns"), problem: "has both include and exclude",
                                  fix: "use one of them: include lists what is sent, exclude what is not")
            }
        }
        if let pairs = try r.stringMap("mask") {
            for (column, text) in pairs {
                let key = "\(r.keyPath("mask")).\(column)"
                guard let mask = Mask(rawValue: text) else {
                    throw ConfigError(key: key, problem: "'\(text)' is not a mask", fix: "use hash or redact")
                }
                guard policy.keeps(column) else {
                    throw ConfigError(key: key, problem: "column \(column) is not sent at all (see columns), so there is nothing to mask",
                                      fix: "remove it from mask, or send it (columns)")
                }
                policy.masks[column] = mask
            }
        }
        return policy
    }

    private static func unique(_ names: [String], key: String) throws(ConfigError) -> [String] {
        var seen: Set<String> = []
        for (index, name) in names.enumerated() {
            guard !name.isEmpty else {
                throw ConfigError(key: "\(key)[\(index)]", problem: "is empty", fix: "name a column")
            }
            guard seen.insert(name).inserted else {
                throw ConfigError(key: "\(key)[\(index)]", problem: "column \(name) is listed twice", fix: "list it once")
            }
        }
        return names
    }
}
