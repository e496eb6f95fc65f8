// Feeds arbitrary bytes, as YAML, to the config loader (`SpillwayConfig.parse`). The loader's `throws(ConfigError)`
// makes every failure a ConfigError by type; what this looks for is anything else: a trap (an out-of-range
// index, an overflow, a force-unwrap), a hang, or a memory error in Yams/libyaml under AddressSanitizer.
//
// Under `swift build` this is a replay tool: `spillway-config-fuzz FILE...` loads each file (e.g. a crash
// input libFuzzer saved). Built with `-D FUZZING -sanitize=fuzzer` (see README.md) it is a libFuzzer target:
// that build defines no `main`, libFuzzer's is used.
import SpillwayApp
import SpillwayCore
#if !FUZZING
import Foundation  // only the replay tool reads files and exits
#endif

/// Loads `bytes` as a config file, with an environment that has one variable set (so `${NAME}` substitution
/// runs both ways). A loaded config is rendered and validated again, as `run` would use it.
func exerciseConfigLoader(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    do {
        let config = try SpillwayConfig.parse(yaml: text, environment: ["SECRET": "s3cret", "SPILLWAY_DATABASE_URL": ""],
                                             sinkKinds: SinkKinds.all)
        _ = "\(config)"
        _ = config.database.redactedURL
    } catch {
        _ = error.description  // a ConfigError, by the loader's type
    }
}

#if FUZZING
/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    exerciseConfigLoader(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point as `<module>_main` (so tests can link the module): it hands the
/// command line to libFuzzer's driver, as libFuzzer's own `main` would.
@_cdecl("spillway_config_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv) { data, count in fuzzOneInput(data, count) }
}
#else
@main
struct ConfigReplay {
    /// Loads each file named on the command line; a trap ends the process, so "ok" means no crash.
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let contents = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                exit(1)
            }
            exerciseConfigLoader(Array(contents))
            print("ok \(path) (\(contents.count) bytes)")
        }
    }
}
#endif
