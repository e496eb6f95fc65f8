import Foundation

/// A PostgreSQL cluster in a temp dir, with logical decoding on, for `spillway demo`. As root it runs as the
/// `postgres` user, because initdb refuses root. `stop()` removes everything it created.
public final class ThrowawayCluster: @unchecked Sendable {
    // @unchecked Sendable: immutable after init, apart from `isRunning`, which only `stop()` changes.
    public let directory: URL
    public let port: Int
    public let binDirectory: String
    private var isRunning = false

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    public init() throws {
        binDirectory = try Self.findServerBinaries()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-demo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        port = try Self.freePort()
    }

    public func start() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try run("/bin/chown", ["postgres", directory.path], asOwner: false) }
        let data = directory.appendingPathComponent("data").path
        try run("\(binDirectory)/initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        let options = "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c wal_level=logical "
            + "-c max_wal_senders=10 -c max_replication_slots=10 -c track_commit_timestamp=on -c fsync=off"
        try run("\(binDirectory)/pg_ctl", ["-D", data, "-l", directory.appendingPathComponent("log").path, "-w", "-t", "60",
                                           "start", "-o", options])
        isRunning = true
    }

    public func stop() {
        if isRunning {
            isRunning = false
            try? run("\(binDirectory)/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    private func run(_ executable: String, _ arguments: [String], asOwner: Bool = true) throws {
        let argv = asOwner && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments
                                             : [executable] + arguments
        let outputPath = directory.appendingPathComponent("command.log").path
        let status = try spawnAndWait(argv, outputPath: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw Error(description: "\((executable as NSString).lastPathComponent) failed (exit \(status)): \(text)")
        }
    }

    /// posix_spawn and waitpid, output to a file. Not Foundation's Process: it learns of the child's exit
    /// through a descriptor that the server pg_ctl starts inherits, so it would wait for the server to stop.
    private func spawnAndWait(_ argv: [String], outputPath: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else {
            throw Error(description: "cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Error(description: "waitpid failed: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    /// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir` on PATH.
    static func findServerBinaries() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["PG_BIN"], FileManager.default.isExecutableFile(atPath: "\(explicit)/initdb") {
            return explicit
        }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let bin = "\(root)/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: "\(bin)/initdb") { return bin }
        }
        throw Error(description: "no PostgreSQL server binaries found (looked for initdb in $PG_BIN and \(root)/*/bin). "
            + "Fix: apt-get install postgresql, or set PG_BIN to the directory holding initdb and pg_ctl")
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Error(description: "cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw Error(description: "cannot bind a socket on 127.0.0.1 to find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
