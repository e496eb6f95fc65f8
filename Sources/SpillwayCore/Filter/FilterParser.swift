/// Tokenizer, recursive-descent parser and type checker for `FilterExpression`, in one pass.
///
/// Grammar (loosest first):
///
///     or         := and ('||' and)*
///     and        := not ('&&' not)*
///     not        := '!' not | comparison
///     comparison := primary (('==' | '!=' | '<' | '<=' | '>' | '>=') primary
///                           | ['not'] 'in' '[' literal (',' literal)* ']'
///                           | 'is' ['not'] 'null')?
///     primary    := '(' or ')' | literal | path
///     path       := name ('.' name)*        name: letters, digits, _, $, or "double quoted"
///     literal    := 'single quoted' ('' inside) | number | true | false | null
///
/// `!` therefore negates the whole comparison after it: `!after.price > 100` is `!(after.price > 100)`.
enum FilterParser {
    static func parse(_ text: String) throws(FilterSyntaxError) -> Condition {
        var parser = Parser(tokens: try tokenize(text), endColumn: text.count + 1)
        let result = try parser.parseOr()
        guard parser.peek.kind == .end else {
            throw parser.unexpected(parser.peek, expecting: "&&, || or the end of the expression")
        }
        return try parser.condition(result)
    }

    // MARK: Tokens

    enum TokenKind: Equatable {
        case name(String)
        case quotedName(String)
        case string(String)
        case number(String)
        case symbol(String)
        case end
    }

    struct Token {
        var kind: TokenKind
        var column: Int

        var display: String {
            switch kind {
            case .name(let s): return "'\(s)'"
            case .quotedName(let s): return "\"\(s)\""
            case .string(let s): return "the string '\(s)'"
            case .number(let s): return "the number \(s)"
            case .symbol(let s): return "'\(s)'"
            case .end: return "the end of the expression"
            }
        }
    }

    static func tokenize(_ text: String) throws(FilterSyntaxError) -> [Token] {
        let chars = Array(text)
        var tokens: [Token] = []
        var i = 0
        func error(_ column: Int, _ problem: String, _ fix: String) -> FilterSyntaxError {
            FilterSyntaxError(column: column, problem: problem, fix: fix)
        }
        while i < chars.count {
            let c = chars[i]
            let column = i + 1
            if c.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var value = ""
                var j = i + 1
                var closed = false
                while j < chars.count {
                    if chars[j] == c {
                        if j + 1 < chars.count, chars[j + 1] == c { value.append(c); j += 2; continue }
                        closed = true
                        break
                    }
                    value.append(chars[j])
                    j += 1
                }
                guard closed else {
                    throw c == "'"
                        ? error(column, "the string that starts here has no closing '", "end it with ' (write '' for a quote inside)")
                        : error(column, "the quoted name that starts here has no closing \"", "end it with \" (write \"\" for a quote inside)")
                }
                if c == "\"" && value.isEmpty { throw error(column, "an empty quoted name", "write the column's name between the quotes") }
                tokens.append(Token(kind: c == "'" ? .string(value) : .quotedName(value), column: column))
                i = j + 1
                continue
            }
            if c.isNumber && c.isASCII || (c == "-" && i + 1 < chars.count && chars[i + 1].isASCII && chars[i + 1].isNumber) {
                var j = i + 1
                while j < chars.count, chars[j].isASCII, chars[j].isNumber { j += 1 }
                if j < chars.count, chars[j] == "." {
                    j += 1
                    guard j < chars.count, chars[j].isASCII, chars[j].isNumber else {
                        throw error(column, "'\(String(chars[i..<j]))' is not a number", "write digits after the point, e.g. 1.5")
                    }
                    while j < chars.count, chars[j].isASCII, chars[j].isNumber { j += 1 }
                }
                if j < chars.count, chars[j] == "e" || chars[j] == "E" {
                    var k = j + 1
                    if k < chars.count, chars[k] == "+" || chars[k] == "-" { k += 1 }
                    guard k < chars.count, chars[k].isASCII, chars[k].isNumber else {
                        throw error(column, "'\(String(chars[i..<k]))' is not a number", "write the exponent's digits, e.g. 1e6")
                    }
                    j = k
                    while j < chars.count, chars[j].isASCII, chars[j].isNumber { j += 1 }
                }
                if j < chars.count, chars[j].isLetter || chars[j] == "_" {
                    throw error(column, "'\(String(chars[i...j]))' is neither a number nor a name",
                                "separate the number from what follows, or start a name with a letter")
                }
                tokens.append(Token(kind: .number(String(chars[i..<j])), column: column))
                i = j
                continue
            }
            if c.isLetter || c == "_" {
                var j = i + 1
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || chars[j] == "$" { j += 1 }
                tokens.append(Token(kind: .name(String(chars[i..<j])), column: column))
                i = j
                continue
            }
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            switch (c, next) {
            case ("=", "="), ("!", "="), ("<", "="), (">", "="), ("&", "&"), ("|", "|"):
                tokens.append(Token(kind: .symbol(String([c, next!])), column: column))
                i += 2
            case ("=", _):
                throw error(column, "'=' is not an operator", "compare with ==")
            case ("&", _):
                throw error(column, "'&' is not an operator", "write && for and")
            case ("|", _):
                throw error(column, "'|' is not an operator", "write || for or")
            case ("<", ">"):
                throw error(column, "'<>' is not an operator", "write != for not equal")
            case ("!", _), ("<", _), (">", _), ("(", _), (")", _), ("[", _), ("]", _), (",", _), (".", _):
                tokens.append(Token(kind: .symbol(String(c)), column: column))
                i += 1
            default:
                throw error(column, "unexpected character '\(c)'",
                            "write fields (after.status), quoted strings ('x'), numbers and the operators == != < <= > >= && || ! in is null")
            }
        }
        tokens.append(Token(kind: .end, column: chars.count + 1))
        return tokens
    }

    // MARK: Parser

    /// What a sub-expression turned out to be: a condition, or a value (with its static type).
    enum Parsed {
        case condition(Condition, column: Int)
        case operand(Operand, ValueType, column: Int, text: String)
    }

    struct Parser {
        var tokens: [Token]
        var index = 0
        let endColumn: Int

        init(tokens: [Token], endColumn: Int) {
            self.tokens = tokens
            self.endColumn = endColumn
        }

        var peek: Token { tokens[index] }

        mutating func advance() -> Token {
            let token = tokens[index]
            if index < tokens.count - 1 { index += 1 }
            return token
        }

        func isSymbol(_ s: String) -> Bool { peek.kind == .symbol(s) }
        func isName(_ s: String) -> Bool { peek.kind == .name(s) }

        func unexpected(_ token: Token, expecting: String) -> FilterSyntaxError {
            switch token.kind {
            case .name("and"): return FilterSyntaxError(column: token.column, problem: "'and' is not an operator", fix: "write &&")
            case .name("or"): return FilterSyntaxError(column: token.column, problem: "'or' is not an operator", fix: "write ||")
            case .name("not"): return FilterSyntaxError(column: token.column, problem: "'not' is not an operator here", fix: "write ! before a condition, or `not in [..]`")
            default:
                return FilterSyntaxError(column: token.column, problem: "expected \(expecting), found \(token.display)",
                                         fix: "see the expression grammar in README, \"Filters\"")
            }
        }

        func condition(_ parsed: Parsed) throws(FilterSyntaxError) -> Condition {
            switch parsed {
            case .condition(let condition, _): return condition
            case .operand(.literal(.bool(let value)), _, _, _): return .constant(value)
            case .operand(_, _, let column, let text):
                throw FilterSyntaxError(column: column, problem: "\(text) alone is not a condition",
                                        fix: "compare it, e.g. `\(text) == true`, `\(text) is not null` or `\(text) == 'x'`")
            }
        }

        mutating func parseOr() throws(FilterSyntaxError) -> Parsed {
            var lhs = try parseAnd()
            while isSymbol("||") {
                _ = advance()
                let rhs = try parseAnd()
                lhs = .condition(.or(try condition(lhs), try condition(rhs)), column: column(of: lhs))
            }
            return lhs
        }

        mutating func parseAnd() throws(FilterSyntaxError) -> Parsed {
            var lhs = try parseNot()
            while isSymbol("&&") {
                _ = advance()
                let rhs = try parseNot()
                lhs = .condition(.and(try condition(lhs), try condition(rhs)), column: column(of: lhs))
            }
            return lhs
        }

        mutating func parseNot() throws(FilterSyntaxError) -> Parsed {
            guard isSymbol("!") else { return try parseComparison() }
            let bang = advance()
            let inner = try parseNot()
            return .condition(.not(try condition(inner)), column: bang.column)
        }

        func column(of parsed: Parsed) -> Int {
            switch parsed {
            case .condition(_, let column), .operand(_, _, let column, _): return column
            }
        }

        mutating func parseComparison() throws(FilterSyntaxError) -> Parsed {
            let lhs = try parsePrimary()
            let token = peek
            if case .symbol(let s) = token.kind, let op = ComparisonOperator(rawValue: s) {
                _ = advance()
                let rhs = try parsePrimary()
                return .condition(try comparison(lhs, op, rhs, at: token), column: column(of: lhs))
            }
            if isName("in") || isName("not") {
                let isNegated = isName("not")
                _ = advance()
                if isNegated {
                    guard isName("in") else { throw unexpected(peek, expecting: "in after not") }
                    _ = advance()
                }
                let list = try parseList()
                return .condition(try membership(lhs, list, isNegated: isNegated, at: token), column: column(of: lhs))
            }
            if isName("is") {
                _ = advance()
                var isNegated = false
                if isName("not") { _ = advance(); isNegated = true }
                guard isName("null") else { throw unexpected(peek, expecting: isNegated ? "null after is not" : "null or not null after is") }
                _ = advance()
                guard case .operand(let operand, _, let column, let text) = lhs else {
                    throw FilterSyntaxError(column: token.column, problem: "`is null` needs a field, not a condition",
                                            fix: "write it after a field, e.g. `after.deleted_at is null`")
                }
                guard case .field = operand else {
                    throw FilterSyntaxError(column: column, problem: "\(text) is a constant, so `is null` is always the same",
                                            fix: "test a field, e.g. `after.deleted_at is null`")
                }
                return .condition(.isNull(operand, isNegated: isNegated), column: column)
            }
            return lhs
        }

        mutating func parsePrimary() throws(FilterSyntaxError) -> Parsed {
            let token = advance()
            switch token.kind {
            case .symbol("("):
                let inner = try parseOr()
                guard isSymbol(")") else { throw unexpected(peek, expecting: "')' to close the '(' at column \(token.column)") }
                _ = advance()
                // A parenthesized condition is reported at its '(' (a value keeps its own column).
                if case .condition(let condition, _) = inner { return .condition(condition, column: token.column) }
                return inner
            case .string(let s):
                return .operand(.literal(.string(s)), .string, column: token.column, text: "'\(s)'")
            case .number(let n):
                return .operand(.literal(.number(n)), .number, column: token.column, text: n)
            case .name("true"), .name("false"):
                let value = token.kind == .name("true")
                return .operand(.literal(.bool(value)), .bool, column: token.column, text: value ? "true" : "false")
            case .name("null"):
                return .operand(.literal(.null), .null, column: token.column, text: "null")
            case .name(let name), .quotedName(let name):
                if case .quotedName = token.kind {
                    throw FilterSyntaxError(column: token.column, problem: "a path starts with an event field, not the quoted name \"\(name)\"",
                                            fix: "write after.\"\(name)\" (or before., key.)")
                }
                guard let root = EventField(rawValue: name) else {
                    throw FilterSyntaxError(column: token.column, problem: "unknown field '\(name)'",
                                            fix: "start a path with one of \(EventField.allCases.map(\.rawValue).joined(separator: ", ")), e.g. after.\(name)")
                }
                var members: [String] = []
                while isSymbol(".") {
                    _ = advance()
                    let member = advance()
                    switch member.kind {
                    case .name(let m), .quotedName(let m): members.append(m)
                    default: throw unexpected(member, expecting: "a column name after '.'")
                    }
                }
                if !members.isEmpty && !root.hasMembers {
                    throw FilterSyntaxError(column: token.column, problem: "\(name) is \(root.type.name), it has no member '\(members[0])'",
                                            fix: "name a column of a row: after.\(members[0]), before.\(members[0]) or key.\(members[0])")
                }
                let path = FieldPath(root: root, members: members)
                return .operand(.field(path), path.type, column: token.column, text: path.text)
            default:
                throw unexpected(token, expecting: "a field, a literal, '!' or '('")
            }
        }

        mutating func parseList() throws(FilterSyntaxError) -> [(JSONValue, ValueType, Int)] {
            guard isSymbol("[") else { throw unexpected(peek, expecting: "'[' to start the list") }
            let open = advance()
            var items: [(JSONValue, ValueType, Int)] = []
            if isSymbol("]") {
                throw FilterSyntaxError(column: open.column, problem: "the list is empty, so `in` is never true",
                                        fix: "list at least one value, e.g. ['a', 'b']")
            }
            while true {
                let item = try parsePrimary()
                guard case .operand(.literal(let value), let type, let column, _) = item else {
                    throw FilterSyntaxError(column: column(of: item), problem: "a list holds literals only",
                                            fix: "write quoted strings, numbers, true, false or null")
                }
                items.append((value, type, column))
                if isSymbol(",") { _ = advance(); continue }
                guard isSymbol("]") else { throw unexpected(peek, expecting: "',' or ']'") }
                _ = advance()
                return items
            }
        }

        // MARK: Type checking

        func comparison(_ lhs: Parsed, _ op: ComparisonOperator, _ rhs: Parsed, at token: Token) throws(FilterSyntaxError) -> Condition {
            guard case .operand(let a, let typeA, let columnA, let textA) = lhs else {
                throw FilterSyntaxError(column: column(of: lhs), problem: "the left side of \(op.rawValue) is a condition, not a value",
                                        fix: "compare a field with a value; put parentheses around conditions joined by && or ||")
            }
            guard case .operand(let b, let typeB, let columnB, let textB) = rhs else {
                throw FilterSyntaxError(column: column(of: rhs), problem: "the right side of \(op.rawValue) is a condition, not a value",
                                        fix: "compare a field with a value; put parentheses around conditions joined by && or ||")
            }
            if case .literal = a, case .literal = b {
                throw FilterSyntaxError(column: columnA, problem: "\(textA) \(op.rawValue) \(textB) compares two constants",
                                        fix: "compare a field, e.g. after.status == 'published'")
            }
            for (type, column, text) in [(typeA, columnA, textA), (typeB, columnB, textB)] {
                if type == .null {
                    throw FilterSyntaxError(column: column, problem: "a comparison with null is never true",
                                            fix: op == .notEqual ? "write `x is not null`" : "write `x is null`")
                }
                if type == .object {
                    throw FilterSyntaxError(column: column, problem: "'\(text)' is a whole row, not a value",
                                            fix: "compare one of its columns, e.g. \(text).id, or test `\(text) is null`")
                }
                if op.isOrdering, type == .bool || type == .operation {
                    throw FilterSyntaxError(column: column, problem: "\(text) is \(type.name), which has no order for \(op.rawValue)",
                                            fix: type == .operation ? "use == or in, e.g. op in ['insert', 'update']" : "use == or !=")
                }
            }
            try checkCompatible(typeA, columnA, textA, with: b, typeB, columnB, textB)
            try checkCompatible(typeB, columnB, textB, with: a, typeA, columnA, textA)
            return .compare(a, op, b)
        }

        /// A field of known type against a literal of another type can never match: almost surely a typo.
        func checkCompatible(_ fieldType: ValueType, _ fieldColumn: Int, _ fieldText: String,
                             with other: Operand, _ otherType: ValueType, _ otherColumn: Int, _ otherText: String) throws(FilterSyntaxError) {
            guard case .literal(let value) = other else { return }
            switch fieldType {
            case .operation:
                guard case .string(let name) = value, ChangeEvent.Operation(rawValue: name) != nil else {
                    throw FilterSyntaxError(column: otherColumn, problem: "\(otherText) is not an operation",
                                            fix: "use 'insert', 'update', 'delete', 'truncate' or 'message'")
                }
            case .string where otherType != .string && otherType != .null:
                throw FilterSyntaxError(column: otherColumn, problem: "\(fieldText) is text, but \(otherText) is \(otherType.name)",
                                        fix: "quote it: '\(otherText)'")
            case .number where otherType != .number && otherType != .null:
                throw FilterSyntaxError(column: otherColumn, problem: "\(fieldText) is a number, but \(otherText) is \(otherType.name)",
                                        fix: "write a number without quotes")
            default:
                return
            }
        }

        func membership(_ lhs: Parsed, _ list: [(JSONValue, ValueType, Int)], isNegated: Bool, at token: Token) throws(FilterSyntaxError) -> Condition {
            guard case .operand(let operand, let type, let column, let text) = lhs else {
                throw FilterSyntaxError(column: column(of: lhs), problem: "`in` needs a field on its left, not a condition",
                                        fix: "write e.g. `tenant in ['acme', 'globex']`")
            }
            guard case .field = operand else {
                throw FilterSyntaxError(column: column, problem: "\(text) is a constant, so `in` is always the same",
                                        fix: "test a field, e.g. `tenant in ['acme', 'globex']`")
            }
            if type == .object {
                throw FilterSyntaxError(column: column, problem: "'\(text)' is a whole row, not a value",
                                        fix: "test one of its columns, e.g. \(text).id in [1, 2]")
            }
            for (value, itemType, itemColumn) in list {
                let itemText: String
                switch value {
                case .string(let s): itemText = "'\(s)'"
                default: itemText = value.plainText
                }
                try checkCompatible(type, column, text, with: .literal(value), itemType, itemColumn, itemText)
            }
            return .member(operand, list.map(\.0), isNegated: isNegated)
        }
    }
}
