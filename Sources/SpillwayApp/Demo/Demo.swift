import Foundation
import Logging
import SpillwayCore
import SpillwayPostgres

/// `spillway demo`: a throwaway cluster, a products table, install, a few changes (one committing out of
/// order), one `run` pass printing the events to standard output, `status`, and a clean stop.
public enum Demo {
    /// Straight to the descriptor, like the file sink's `-`, so headings and events interleave in order.
    private static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }

    /// `sinks` replaces the demo's standard-output sink (`spillway demo --config FILE` takes the file's sinks).
    public static func run(logger: Logger, keepCluster: Bool = false, sinks: [SinkConfig]? = nil) async throws {
        let cluster = try ThrowawayCluster()
        say("# starting a throwaway PostgreSQL cluster in \(cluster.directory.path) on port \(cluster.port)")
        try cluster.start()
        do {
            try await exercise(cluster: cluster, logger: logger, sinks: sinks)
        } catch {
            if !keepCluster { cluster.stop() }
            throw error
        }
        if keepCluster {
            say("# cluster left running at \(cluster.url) (data in \(cluster.directory.path))")
        } else {
            cluster.stop()
            say("# cluster stopped and removed")
        }
    }

    static let config = """
        database:
          url: postgres://postgres@127.0.0.1:5432/postgres
        consumer: demo
        source:
          kind: audit_log
          tables: [public.products]
          poll_interval: 200ms
        sinks:
          - name: stdout
            kind: file
            path: "-"
        """

    private static func exercise(cluster: ThrowawayCluster, logger: Logger, sinks configuredSinks: [SinkConfig]?) async throws {
        var config = try SpillwayConfig.parse(yaml: config, environment: ["SPILLWAY_DATABASE_URL": cluster.url])
        if let configuredSinks { config.sinks = configuredSinks }
        let app = try await PostgresConnection.connect(url: cluster.url, applicationName: "demo-app")
        let other = try await PostgresConnection.connect(url: cluster.url, applicationName: "demo-app-2")
        try await app.execute("""
            CREATE TABLE public.products (
                id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, tags text[],
                attributes jsonb, in_stock boolean NOT NULL DEFAULT true, updated_at timestamptz NOT NULL DEFAULT now())
            """)
        let report = try await AuditLogInstaller(config: config, logger: logger).install(on: app)
        say("# spillway install: audit table created=\(report.createdAuditTable), triggers on \(report.triggeredTables.map(\.description))")
        let walYAML = Self.config.replacingOccurrences(of: "consumer: demo", with: "consumer: demo-wal")
            .replacingOccurrences(of: "kind: audit_log", with: "kind: replication")
        var walConfig = try SpillwayConfig.parse(yaml: walYAML, environment: ["SPILLWAY_DATABASE_URL": cluster.url])
        walConfig.sinks = config.sinks
        _ = try await ReplicationInstaller(config: walConfig, logger: logger).install(on: app)
        say("# spillway install (a second consumer, source.kind: replication): publication and slot \(walConfig.source.replication.slot)")

        say("# the application writes: three inserts in one transaction, an update by tenant 'acme', a delete")
        try await app.execute("""
            BEGIN;
            INSERT INTO products (name, price, tags, attributes) VALUES
              ('Kettle', 39.90, '{kitchen}', '{"watts": 2200}'),
              ('Toaster', 24.50, '{kitchen,breakfast}', '{"slots": 2}'),
              ('Lamp', 19.99, '{}', NULL);
            COMMIT;
            BEGIN;
            SET LOCAL app.current_org_id = 'acme';
            UPDATE products SET price = 34.90, updated_at = now() WHERE name = 'Kettle';
            COMMIT;
            DELETE FROM products WHERE name = 'Lamp';
            """)
        say("# out-of-order commit: transaction A inserts first but commits after transaction B")
        try await app.execute("BEGIN; INSERT INTO products (name, price) VALUES ('A: inserted first, committed last', 1.00)")
        try await other.execute("BEGIN; INSERT INTO products (name, price) VALUES ('B: inserted second, committed first', 2.00); COMMIT")

        let sinks = try await SinkFactory.makeRoutes(config)
        let fanout = Fanout(routes: sinks, logger: logger)
        say("# spillway run (first pass: A is still open, so only what has committed flows)")
        try await PipelineFactory.make(config, fanout: fanout, options: .init(once: true), logger: logger).run()
        try await app.execute("COMMIT")
        say("# transaction A commits; spillway run (second pass, resuming from the checkpoint)")
        try await PipelineFactory.make(config, fanout: fanout, options: .init(once: true), logger: logger).run()
        say("# spillway status")
        say(try await StatusReport.load(config: config, on: app).text)

        say("# the same changes through the replication consumer (pgoutput, in commit order), plus an outbox message")
        try await app.execute("SELECT pg_logical_emit_message(true, 'orders', '{\"order\": 42, \"status\": \"paid\"}')")
        try await PipelineFactory.make(walConfig, fanout: fanout, options: .init(once: true), logger: logger).run()
        for route in sinks { try await route.sink.close() }
        say("# spillway status (replication)")
        say(try await StatusReport.load(config: walConfig, on: app).text)
        await app.close()
        await other.close()
    }
}
