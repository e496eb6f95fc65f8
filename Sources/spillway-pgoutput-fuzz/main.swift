// Feeds arbitrary bytes to every decoder entry point. Any outcome but a trap is a pass.
//
// Under `swift build` this is a replay tool: `PGOutputFuzz FILE...` runs each file through
// the decoders (e.g. a crash input libFuzzer saved). Built with `-D FUZZING
// -sanitize=fuzzer` (see README.md) it is a libFuzzer target instead; that build compiles
// the library sources into this module, hence the conditional import.
#if canImport(SpillwayCore)
import SpillwayCore
#endif
#if !FUZZING
import Foundation  // only the replay tool reads files
#endif

/// Decodes `bytes` as one pgoutput message (both stream modes) and as a replication stream
/// message, then as a session: a sequence of records, each a length byte and that many bytes,
/// fed through ``PGOutputDecoder`` and ``RelationCache``.
func exerciseDecoders(_ bytes: [UInt8]) {
    for inStreamBlock in [false, true] {
        if let message = try? PGOutputMessage(decoding: bytes, inStreamBlock: inStreamBlock) {
            _ = "\(message)"
        }
    }
    do {
        if case .xLogData(let data) = try ReplicationStreamMessage(decoding: bytes) {
            _ = try? PGOutputMessage(decoding: data.payload, inStreamBlock: false)
        }
    } catch {
        _ = error.description
    }

    var decoder = PGOutputDecoder()
    var cache = RelationCache()
    var rest = bytes[...]
    while let length = rest.popFirst() {
        let record = rest.prefix(Int(length))
        rest = rest.dropFirst(Int(length))
        do {
            let message = try decoder.decode(record)
            cache.observe(message)
            _ = try? cache.relations(referencedBy: message)
            if case .begin(let begin) = message { _ = begin.commitTimestamp.iso8601 }
        } catch {
            _ = error.description
        }
    }
}

#if FUZZING
/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    exerciseDecoders(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}
#else
/// Runs each file named on the command line through the decoders; returns how many.
func replay(paths: some Sequence<String>) -> Int {
    var count = 0
    for path in paths {
        guard let contents = FileManager.default.contents(atPath: path) else {
            print("cannot read \(path)")
            exit(1)
        }
        exerciseDecoders(Array(contents))
        print("ok \(path) (\(contents.count) bytes)")
        count += 1
    }
    return count
}

// A declaration rather than a statement, so that this file also parses under the fuzz
// build's `-parse-as-library`; in this (script-mode) build it runs at startup.
let replayedFileCount = replay(paths: CommandLine.arguments.dropFirst())
#endif
