/// For sinks that retry on their own rather than throw (the webhook sink retries each request, so the events
/// of a batch it already delivered are not sent again): each failed attempt is still reported, so `status`
/// shows the last error while the sink is stuck. The pipeline's fan-out sets the handler around `deliver`.
public enum SinkFailureReport {
    /// A class rather than a bare optional closure: a task-local of function type crashed in
    /// `swift_task_localValuePush` in release builds (Swift 6.3, Linux).
    public final class Handler: Sendable {
        let report: @Sendable (String) async -> Void

        public init(_ report: @escaping @Sendable (String) async -> Void) {
            self.report = report
        }
    }

    @TaskLocal public static var handler: Handler?

    /// Reports `message` to the pipeline, if one is listening.
    public static func report(_ message: String) async {
        await handler?.report(message)
    }
}
