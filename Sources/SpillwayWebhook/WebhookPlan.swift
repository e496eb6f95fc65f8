import SpillwayCore

/// One HTTP request to make: its events, URL, body and `webhook-id` (stable across retries).
public struct WebhookRequest: Sendable {
    public var events: [ChangeEvent]
    public var url: String
    public var body: [UInt8]
    /// The event id; for a batch body, the first event's id + "+" + the count.
    public var webhookID: String
    /// `application/json`, or with `format: cloudevents` CloudEvents' structured or batched content type.
    public var contentType = "application/json"
}

/// Splits a batch into requests and the requests into lanes that run concurrently. Pure.
///
/// Every event of one row (same table and key) lands in the same lane, in batch order, so changes to a
/// key arrive in order whatever `concurrency` is; lanes run in parallel. Events without a key (truncate,
/// messages, tables without a primary key) share one lane per table. `body: batch` requests go in one
/// lane, in order: a batch mixes keys.
public enum WebhookPlan {
    /// `encoder` writes each event of a `body: event` or `body: batch` request (`format`).
    public static func lanes(for batch: [ChangeEvent], settings: WebhookSinkSettings,
                             encoder: EventEncoder = .spillway) -> [[WebhookRequest]] {
        switch settings.body {
        case .batch:
            return [batchRequests(batch, settings: settings, encoder: encoder)].filter { !$0.isEmpty }
        case .event, .template:
            let laneCount = max(1, settings.concurrency)
            var lanes: [[WebhookRequest]] = Array(repeating: [], count: laneCount)
            var laneOfKey: [String: Int] = [:]
            for event in batch {
                let partition = partitionKey(event)
                let lane: Int
                if let known = laneOfKey[partition] {
                    lane = known
                } else {
                    lane = laneOfKey.count % laneCount
                    laneOfKey[partition] = lane
                }
                lanes[lane].append(request(for: event, settings: settings, encoder: encoder))
            }
            return lanes.filter { !$0.isEmpty }
        }
    }

    public static func partitionKey(_ event: ChangeEvent) -> String {
        guard let key = event.key else { return event.qualifiedTable }
        return event.qualifiedTable + "\u{0}" + JSONEncoding.string(.object(key))
    }

    /// The request for one event (for `body: batch`, a batch of one).
    public static func request(for event: ChangeEvent, settings: WebhookSinkSettings,
                               encoder: EventEncoder = .spillway) -> WebhookRequest {
        let url = settings.url.rendered(event, as: .url)
        switch settings.body {
        case .event:
            return WebhookRequest(events: [event], url: url, body: encoder.bytes(event), webhookID: event.id,
                                  contentType: encoder.contentType(isBatch: false))
        case .template(let template):
            return WebhookRequest(events: [event], url: url, body: Array(template.rendered(event, as: .json).utf8),
                                  webhookID: event.id)
        case .batch:
            return batchRequest([event], url: url, encoder: encoder)
        }
    }

    /// Consecutive events, up to `batch_size`, that render the same URL.
    static func batchRequests(_ batch: [ChangeEvent], settings: WebhookSinkSettings, encoder: EventEncoder) -> [WebhookRequest] {
        var requests: [WebhookRequest] = []
        var current: [ChangeEvent] = []
        var currentURL = ""
        for event in batch {
            let url = settings.url.rendered(event, as: .url)
            if !current.isEmpty, url != currentURL || current.count >= settings.batchSize {
                requests.append(batchRequest(current, url: currentURL, encoder: encoder))
                current = []
            }
            currentURL = url
            current.append(event)
        }
        if !current.isEmpty { requests.append(batchRequest(current, url: currentURL, encoder: encoder)) }
        return requests
    }

    static func batchRequest(_ events: [ChangeEvent], url: String, encoder: EventEncoder) -> WebhookRequest {
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (index, event) in events.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            encoder.write(event, into: &body)
        }
        body.append(UInt8(ascii: "]"))
        return WebhookRequest(events: events, url: url, body: body, webhookID: "\(events[0].id)+\(events.count)",
                              contentType: encoder.contentType(isBatch: true))
    }
}
