// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "spillway",
    platforms: [.macOS(.v15)],  // Synchronization.Mutex (SpillwayKafka)
    products: [
        .executable(name: "spillway", targets: ["spillway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // libpq, wrapped once in SpillwayPostgres; nothing else imports it.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // hiredis, wrapped once in SpillwayRedis; nothing else imports it. No `pkgConfig: "hiredis"`: Debian's
        // hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM rejects with a warning on every build; the shim
        // includes <hiredis/hiredis.h> from the default include path and the modulemap links libhiredis.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // The pure core: event model, JSON, value mapping, config, routing, retry, batch planning. No I/O.
        .target(
            name: "SpillwayCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),  // latency percentiles
            ]
        ),
        .target(
            name: "SpillwayPostgres",
            dependencies: [
                "CLibPQ",
                "SpillwayCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "SpillwaySinks",
            dependencies: [
                "SpillwayCore",
                "SpillwayPostgres",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Redis cache-invalidation sink and its hiredis wrapper.
        .target(
            name: "SpillwayRedis",
            dependencies: [
                "CHiredis",
                "SpillwayCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The webhook sink: HTTP via async-http-client, Standard Webhooks signing via swift-crypto.
        .target(
            name: "SpillwayWebhook",
            dependencies: [
                "SpillwayCore",
                "SpillwayPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // librdkafka, wrapped once in SpillwayKafka; nothing else imports it.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        // The Kafka sink on an idempotent librdkafka producer, and the mock cluster the tests use.
        .target(
            name: "SpillwayKafka",
            dependencies: [
                "CRdKafka",
                "SpillwayCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test support: a librdkafka mock Kafka cluster as a process (integration tests, benchmarks).
        .executableTarget(
            name: "spillway-kafka-mock",
            dependencies: ["SpillwayKafka"]
        ),
        // Wiring: the pipeline service, commands' behaviour, the demo cluster.
        .target(
            name: "SpillwayApp",
            dependencies: [
                "SpillwayCore",
                "SpillwayPostgres",
                "SpillwaySinks",
                "SpillwayRedis",
                "SpillwayWebhook",
                "SpillwayKafka",
                // HMAC-SHA256 for hashed columns (`source.tables[].mask`).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The status endpoint of `run` (/healthz, /readyz, /metrics) on swift-nio, and the Prometheus export.
        .target(
            name: "SpillwayHTTP",
            dependencies: [
                "SpillwayCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "spillway",
            dependencies: [
                "SpillwayApp",
                "SpillwayCore",
                "SpillwayHTTP",
                "SpillwayPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // libFuzzer target for the config loader; under `swift build` a replay tool (see README).
        .executableTarget(
            name: "spillway-config-fuzz",
            dependencies: ["SpillwayApp", "SpillwayCore"]  // the app's list of sink kinds, whose modules parse their keys
        ),
        // libFuzzer target for the pgoutput decoder; under `swift build` a replay tool (see README).
        .executableTarget(
            name: "spillway-pgoutput-fuzz",
            dependencies: ["SpillwayCore"]
        ),
        .testTarget(
            name: "SpillwayCoreTests",
            dependencies: ["SpillwayCore"]
        ),
        // What the test targets share (kcat, the Kafka mock tool as a process); a library, not a test target.
        .target(
            name: "SpillwayTestSupport",
            dependencies: ["SpillwayCore"],
            path: "Tests/SpillwayTestSupport"
        ),
        // Config parsing with every sink kind's own keys: needs the sink modules, so not in SpillwayCoreTests.
        .testTarget(
            name: "SpillwayConfigTests",
            dependencies: ["SpillwayApp", "SpillwayCore", "SpillwayKafka", "SpillwayRedis", "SpillwaySinks", "SpillwayWebhook"]
        ),
        .testTarget(
            name: "SpillwayWebhookTests",
            dependencies: ["SpillwayCore", "SpillwayWebhook"]
        ),
        .testTarget(
            name: "SpillwayIntegrationTests",
            dependencies: ["SpillwayApp", "SpillwayCore", "SpillwayPostgres", "SpillwaySinks", "SpillwayKafka", "SpillwayRedis",
                           "SpillwayWebhook", "SpillwayTestSupport", .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            exclude: ["Support/webhook_receiver.py", "Support/debezium_consumer.py", "Support/scrape_metrics.py", "Support/cloudevents_consumer.py"]
        ),
        .testTarget(
            name: "SpillwayKafkaTests",
            // The tool is a dependency so `swift test` builds it next to the test bundle,
            // where the outage tests launch it as a separate process.
            dependencies: ["SpillwayKafka", "SpillwayCore", "SpillwayTestSupport", "spillway-kafka-mock",
                           .product(name: "Logging", package: "swift-log")]
        ),
    ]
)
