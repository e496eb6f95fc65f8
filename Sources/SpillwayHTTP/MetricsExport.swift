import Metrics
import Prometheus

/// The Prometheus registry every metric of the process goes to, once bootstrapped.
public enum MetricsExport {
    /// Bootstraps swift-metrics with a Prometheus registry (once per process) and returns it. `buckets`
    /// gives duration histograms other buckets than the library's default (5ms…10s) by label.
    public static func bootstrap(durationBuckets buckets: [String: [Duration]] = [:]) -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = buckets
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public static func render(_ registry: PrometheusCollectorRegistry) -> String {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
