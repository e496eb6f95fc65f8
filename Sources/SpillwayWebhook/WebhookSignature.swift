import Crypto
import Foundation

/// Standard Webhooks signing (https://www.standardwebhooks.com): `v1,` + base64 of HMAC-SHA256 with the
/// secret's decoded key over `"<webhook-id>.<webhook-timestamp>.<body>"`. With two keys (rotation) the
/// header carries both signatures, space-separated, so receivers holding either key accept.
public enum WebhookSignature {
    public static func sign(id: String, timestamp: Int64, body: [UInt8], keys: [[UInt8]]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        return keys.map { key in
            let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
            return "v1," + Data(code).base64EncodedString()
        }.joined(separator: " ")
    }
}
