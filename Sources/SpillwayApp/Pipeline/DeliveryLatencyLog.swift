import Foundation
import Logging
import SpillwayCore

/// How long delivered events took from their commit to the moment every sink acknowledged them: logged
/// every minute (info) for that minute, and for the whole run when the pipeline stops (notice).
struct DeliveryLatencyLog {
    private(set) var total = LatencyHistogram()
    private var interval = LatencyHistogram()
    private var intervalStart = ContinuousClock.now
    static let period = Duration.seconds(60)

    mutating func recordCommitLatencies(of events: [ChangeEvent]) {
        let now = Date().timeIntervalSince1970
        total.recordCommitLatencies(of: events, acknowledgedAt: now)
        interval.recordCommitLatencies(of: events, acknowledgedAt: now)
    }

    mutating func logPeriodically(_ logger: Logger) {
        guard ContinuousClock.now - intervalStart >= Self.period else { return }
        if interval.count > 0 {
            logger.info("delivered", metadata: [LogKey.events: "\(interval.count)", LogKey.commitToAck: "\(interval.summary)"])
        }
        interval = LatencyHistogram()
        intervalStart = .now
    }

    func logSummary(_ logger: Logger) {
        guard total.count > 0 else { return }
        logger.notice("delivery latency", metadata: [LogKey.commitToAck: "\(total.summary)"])
    }
}
