/// For sinks that retry on their own rather than throw (the webhook sink retries each request, so the events
/// of a batch it already delivered are not sent again): each failed attempt is still reported, so `status`
/// shows the last error while the sink is stuck. The pipeline's fan-out sets the handler around `deliver`.
public enum SinkFailureReport {
    @TaskLocal public static var handler: (@Sendable (String) async -> Void)?

    /// Reports `message` to the pipeline, if one is listening.
    public static func report(_ message: String) async {
        await handler?(message)
    }
}
