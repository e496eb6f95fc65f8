import Foundation
import SpillwayTestSupport
import Testing

/// Cuts a process's TCP connections to one port the way a failed network does: iptables drops their packets in
/// both directions, so neither end hears a FIN or a reset, and each side learns only from its own timeouts.
/// Connections the process opens afterwards (new local ports) are not affected.
final class NetworkCut: Sendable {
    let ports: [Int]

    /// Whether this machine lets a test drop packets (iptables installed, CAP_NET_ADMIN): probed once by adding
    /// and removing a rule for a port nothing uses.
    static let isAvailable: Bool = {
        let probe = ["INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]
        guard run(["-w", "-I"] + probe) else { return false }
        return run(["-w", "-D"] + probe)
    }()

    /// Drops every packet of `pid`'s established connections to `remotePort` (on this host).
    static func cut(pid: Int32, remotePort: Int) async throws -> NetworkCut {
        let table = try await runTool("ss", ["-tnpH", "state", "established", "( dport = :\(remotePort) )"])
        // `ESTAB 0 0 127.0.0.1:41234 127.0.0.1:55432 users:(("spillway",pid=123,fd=9))` (state column absent
        // with a state filter): the local port is the one before the remote address.
        let ports = table.split(separator: "\n").filter { $0.contains("pid=\(pid),") }.compactMap { line -> Int? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let local = fields.first(where: { $0.hasSuffix(":\(remotePort)") == false && $0.contains(":") }) else { return nil }
            return local.split(separator: ":").last.flatMap { Int($0) }
        }
        let cut = NetworkCut(ports: ports)
        for port in ports {
            try #require(run(["-w", "-I", "INPUT", "-p", "tcp", "--sport", "\(port)", "-j", "DROP"]))
            try #require(run(["-w", "-I", "INPUT", "-p", "tcp", "--dport", "\(port)", "-j", "DROP"]))
        }
        return cut
    }

    private init(ports: [Int]) { self.ports = ports }

    /// Lets the packets through again.
    func heal() {
        for port in ports {
            _ = Self.run(["-w", "-D", "INPUT", "-p", "tcp", "--sport", "\(port)", "-j", "DROP"])
            _ = Self.run(["-w", "-D", "INPUT", "-p", "tcp", "--dport", "\(port)", "-j", "DROP"])
        }
    }

    private static func run(_ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["iptables"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
