/// Exact comparison of JSON number literals (`12.50`, `-3e5`, `12345678901234567890.5`) without converting
/// them to `Double`: a `numeric(30,10)` column arrives as its exact text, and a filter on it must not round.
enum DecimalText {
    /// A number as sign, significant digits and a decimal exponent: value = ±0.d₁d₂…dₙ × 10^exponent.
    /// Zero has no digits. Leading and trailing zeros are dropped, so equal values have equal forms.
    struct Normalized: Equatable {
        var isNegative: Bool
        var digits: [UInt8]
        var exponent: Int
    }

    /// nil for text that is not a JSON number (the event never carries such text as a number).
    static func normalize(_ text: String) -> Normalized? {
        var bytes = Array(text.utf8)[...]
        var isNegative = false
        if bytes.first == UInt8(ascii: "-") { isNegative = true; bytes.removeFirst() } else if bytes.first == UInt8(ascii: "+") { bytes.removeFirst() }
        var integer: [UInt8] = [], fraction: [UInt8] = []
        while let b = bytes.first, isDigit(b) { integer.append(b - 48); bytes.removeFirst() }
        if bytes.first == UInt8(ascii: ".") {
            bytes.removeFirst()
            while let b = bytes.first, isDigit(b) { fraction.append(b - 48); bytes.removeFirst() }
        }
        guard !integer.isEmpty || !fraction.isEmpty else { return nil }
        var exponent = 0
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes.removeFirst()
            var negativeExponent = false
            if bytes.first == UInt8(ascii: "-") { negativeExponent = true; bytes.removeFirst() } else if bytes.first == UInt8(ascii: "+") { bytes.removeFirst() }
            guard let first = bytes.first, isDigit(first) else { return nil }
            while let b = bytes.first, isDigit(b) {
                // Saturates far beyond any digit count, so an absurd exponent still orders correctly.
                if exponent < 1 << 40 { exponent = exponent * 10 + Int(b - 48) }
                bytes.removeFirst()
            }
            if negativeExponent { exponent = -exponent }
        }
        guard bytes.isEmpty else { return nil }
        var digits = integer + fraction
        exponent += integer.count
        while digits.first == 0 { digits.removeFirst(); exponent -= 1 }
        while digits.last == 0 { digits.removeLast() }
        if digits.isEmpty { return Normalized(isNegative: false, digits: [], exponent: 0) }
        return Normalized(isNegative: isNegative, digits: digits, exponent: exponent)
    }

    /// -1, 0 or 1; nil when either side is not a number.
    static func compare(_ lhs: String, _ rhs: String) -> Int? {
        guard let a = normalize(lhs), let b = normalize(rhs) else { return nil }
        return compare(a, b)
    }

    static func compare(_ a: Normalized, _ b: Normalized) -> Int {
        let signA = a.digits.isEmpty ? 0 : (a.isNegative ? -1 : 1)
        let signB = b.digits.isEmpty ? 0 : (b.isNegative ? -1 : 1)
        if signA != signB { return signA < signB ? -1 : 1 }
        if signA == 0 { return 0 }
        let magnitude = compareMagnitude(a, b)
        return signA < 0 ? -magnitude : magnitude
    }

    private static func compareMagnitude(_ a: Normalized, _ b: Normalized) -> Int {
        if a.exponent != b.exponent { return a.exponent < b.exponent ? -1 : 1 }
        for i in 0..<max(a.digits.count, b.digits.count) {
            let x = i < a.digits.count ? a.digits[i] : 0
            let y = i < b.digits.count ? b.digits[i] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
}
