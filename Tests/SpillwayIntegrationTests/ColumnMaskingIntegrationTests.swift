import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

/// HMAC-SHA256 as Python's standard library computes it: an implementation independent of Spillway's.
private func pythonHMAC(key: String, value: String) throws -> String {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    child.arguments = ["python3", "-c", "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
                       key, value]
    let out = Pipe()
    child.standardOutput = out
    child.standardInput = FileHandle.nullDevice
    try child.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    child.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

@Suite("HMAC-SHA256 for hashed columns")
struct MaskHashTests {
    @Test("RFC 4231 test case 2")
    func rfc4231() {
        let hash = ColumnMasking.hmacSHA256(key: "Jefe")
        #expect(hash(Array("what do ya want for nothing?".utf8)) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

@Suite("excluded and masked columns never leave", .enabled(if: TestEnvironment.canRun))
struct ColumnMaskingIntegrationTests {
    static let maskKey = "test-mask-key-0123456789abcdef"
    /// Values that must never appear outside PostgreSQL's own tables.
    static let ssn = "SSN-123-45-6789", ssn2 = "SSN-999-88-7777"
    static let email = "alice@example.com", email2 = "alice2@example.com"
    static let phone = "+47-555-0101", phone2 = "+47-555-0202"
    static var secrets: [String] { [ssn, ssn2, email, email2, phone, phone2] }

    static func yaml(_ db: TestDatabase, kind: SourceKind, receiver: WebhookReceiver, sink: String, exclude: [String]) -> String {
        """
        database:
          url: \(db.url)
        consumer: masking
        source:
          kind: \(kind.rawValue)
          tables:
            - {name: public.users, columns: {exclude: [\(exclude.joined(separator: ", "))]}, mask: {email: hash, phone: redact}}
          mask_key: ${SPILLWAY_MASK_KEY}
          poll_interval: 100ms
          slot: \(db.slotName(consumer: "masking"))
        log: {level: trace}
        sinks:
          - {name: file, kind: file, path: \(sink)}
          - name: hook
            kind: webhook
            url: \(receiver.url)/users
            secret: \(WebhookReceiver.secret)
            timeout: 2s
        """
    }

    static func leaked(_ text: String) -> [String] { secrets.filter { text.contains($0) } }

    @Test("file and webhook sinks, the dead-letter row, logs and status carry no excluded or clear masked value",
          arguments: SourceKind.allCases)
    func nothingLeaks(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            // REPLICA IDENTITY FULL: replication's `before` carries every column too, so the mask must apply there.
            try await app.execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text, email text, phone text, ssn text, note text);
                ALTER TABLE users REPLICA IDENTITY FULL;
                """)
            let receiver = try await WebhookReceiver()
            try receiver.control(#"{"reject_if_contains": "\"name\":\"reject-me\""}"#)
            let sink = tempPath("users.jsonl")
            let configPath = tempPath("masking.yaml")
            try Self.yaml(db, kind: kind, receiver: receiver, sink: sink, exclude: ["ssn"]).write(toFile: configPath, atomically: true, encoding: .utf8)
            let environment = ["SPILLWAY_MASK_KEY": Self.maskKey]
            let installed = try await SpillwayProcess.run(["install", "--config", configPath], environment: environment)
            #expect(installed.code == 0, "\(installed.stderr)")

            try await app.execute("INSERT INTO users VALUES (1, 'alice', '\(Self.email)', '\(Self.phone)', '\(Self.ssn)', 'n1')")
            try await app.execute("INSERT INTO users VALUES (2, 'reject-me', 'x@example.com', '\(Self.phone)', '\(Self.ssn2)', 'n2')")
            try await app.execute("UPDATE users SET email = '\(Self.email2)', phone = '\(Self.phone2)', ssn = '\(Self.ssn2)' WHERE id = 1")
            try await app.execute("DELETE FROM users WHERE id = 1")
            let run = try await SpillwayProcess.run(["run", "--once", "--config", configPath], environment: environment)
            #expect(run.code == 0, "\(run.stderr)")

            // The file sink.
            let events = try readEvents(sink)
            #expect(events.map(\.op) == [.insert, .insert, .update, .delete])
            let fileText = try String(contentsOfFile: sink, encoding: .utf8)
            #expect(Self.leaked(fileText) == [], "the file sink holds \(Self.leaked(fileText))")
            #expect(!fileText.contains("\"ssn\""))
            let first = try #require(events.first?.after)
            #expect(first.names == ["id", "name", "email", "phone", "note"])
            #expect(first["email"] == .string(try pythonHMAC(key: Self.maskKey, value: Self.email)))
            #expect(first["phone"] == .null)
            #expect(events.allSatisfy { $0.maskedColumns == ["phone"] })
            #expect(events[2].before?["email"] == .string(try pythonHMAC(key: Self.maskKey, value: Self.email)))
            #expect(events[2].after?["email"] == .string(try pythonHMAC(key: Self.maskKey, value: Self.email2)))
            #expect(events[3].before?["email"] == events[2].after?["email"], "equal values hash alike: joinable")
            #expect(events.allSatisfy { $0.key == JSONObject([("id", $0.key?["id"] ?? .null)]) && $0.key?["id"] != .null })

            // The webhook sink: every request body, accepted or rejected.
            let bodies = receiver.requests.map(\.body).joined(separator: "\n")
            #expect(receiver.acceptedEvents.count == 3)
            #expect(!bodies.isEmpty)
            #expect(Self.leaked(bodies) == [], "webhook bodies hold \(Self.leaked(bodies))")
            #expect(!bodies.contains("\"ssn\""))

            // The dead-letter row of the rejected event.
            let deadLetters = try await app.query("SELECT event::text FROM spillway.dead_letters")
            #expect(deadLetters.rows.count == 1)
            let deadText = deadLetters.rows.compactMap { $0[0] }.joined()
            #expect(deadText.contains("reject-me"))
            #expect(Self.leaked(deadText) == [] && !deadText.contains("\"ssn\""), "dead letter: \(deadText)")

            // Logs (at trace) and status.
            #expect(Self.leaked(installed.stderr + installed.stdout + run.stderr + run.stdout) == [])
            #expect(!(run.stderr + installed.stderr).contains(Self.maskKey), "the mask key is never logged")
            let status = try await SpillwayProcess.run(["status", "--config", configPath], environment: environment)
            let statusJSON = try await SpillwayProcess.run(["status", "--json", "--config", configPath], environment: environment)
            #expect(status.code == 0 && statusJSON.code == 0)
            #expect(Self.leaked(status.stdout + statusJSON.stdout + status.stderr + statusJSON.stderr) == [])

            if kind == .auditLog {
                // The trigger keeps excluded columns out of the audit table itself.
                let audit = try await app.query("SELECT coalesce(old_data::text, '') || coalesce(new_data::text, '') FROM spillway.audit_log")
                let auditText = audit.rows.compactMap { $0[0] }.joined()
                #expect(audit.rows.count == 4)
                #expect(!auditText.contains(Self.ssn) && !auditText.contains(Self.ssn2) && !auditText.contains("\"ssn\""))
                #expect(auditText.contains("\"note\""))

                // The config now also excludes `note`, without `install`: run says the trigger is stale, and
                // sinks still never see `note`.
                try Self.yaml(db, kind: kind, receiver: receiver, sink: sink, exclude: ["ssn", "note"])
                    .write(toFile: configPath, atomically: true, encoding: .utf8)
                try await app.execute("INSERT INTO users VALUES (3, 'carol', 'c@example.com', '1', '\(Self.ssn)', 'secret-note')")
                let stale = try await SpillwayProcess.run(["run", "--once", "--config", configPath], environment: environment)
                #expect(stale.code == 0, "\(stale.stderr)")
                #expect(stale.stderr.contains("the capture trigger does not apply source.tables' columns") && stale.stderr.contains("spillway install"),
                        "\(stale.stderr)")
                let carol = try #require(try readEvents(sink).last)
                #expect(carol.after?["name"] == .string("carol") && carol.after?["note"] == nil)
                #expect(try await SpillwayProcess.run(["install", "--config", configPath], environment: environment).code == 0)
                try await app.execute("UPDATE users SET name = 'carol2' WHERE id = 3")
                let fresh = try await SpillwayProcess.run(["run", "--once", "--config", configPath], environment: environment)
                #expect(fresh.code == 0)
                #expect(!fresh.stderr.contains("the capture trigger does not apply"), "\(fresh.stderr)")
                let latest = try await app.query("SELECT new_data::text FROM spillway.audit_log ORDER BY id DESC LIMIT 1")
                #expect(latest.first?[0].map { !$0.contains("secret-note") && !$0.contains("\"note\"") } == true, "\(latest.rows)")
            }
        }
    }
}
