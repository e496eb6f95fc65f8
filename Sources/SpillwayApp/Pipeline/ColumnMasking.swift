import Crypto
import SpillwayCore

/// The keyed hash behind `mask: {col: hash}`: HMAC-SHA256 from swift-crypto (BoringSSL's implementation on
/// Linux, already linked for webhook signatures), so no hand-rolled cryptography and no new dependency.
public enum ColumnMasking {
    /// The masker for `source`'s column policies; `hash` keyed by `source.mask_key`.
    public static func masker(for source: SourceConfig) -> ColumnMasker {
        ColumnMasker(policies: source.columnPolicies, hash: source.maskKey.map(hmacSHA256(key:)))
    }

    /// 64 lower-case hex digits of HMAC-SHA256(key, value).
    public static func hmacSHA256(key: String) -> ColumnMasker.Hasher {
        // The key's bytes, not a SymmetricKey: that type is not Sendable here, and making one per value costs
        // a copy of 16+ bytes next to the HMAC itself.
        let keyBytes = Array(key.utf8)
        return { value in
            let code = HMAC<SHA256>.authenticationCode(for: value, using: SymmetricKey(data: keyBytes))
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = []
            hex.reserveCapacity(64)
            for byte in code {
                hex.append(digits[Int(byte >> 4)])
                hex.append(digits[Int(byte & 0x0f)])
            }
            return String(decoding: hex, as: UTF8.self)
        }
    }
}
