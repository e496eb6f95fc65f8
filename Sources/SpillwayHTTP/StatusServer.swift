import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SpillwayCore

/// One answer of the status endpoint.
public struct StatusResponse: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var body: String

    public init(status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// Answers a GET of a path; runs on an event loop, so it must not block (every answer here is read from
/// memory: the health state and the metrics registry).
public typealias StatusRoutes = @Sendable (_ path: String) -> StatusResponse

/// The HTTP endpoint of `spillway run` (`/healthz`, `/readyz`, `/metrics`): a Service in the run's
/// ServiceGroup, started before the pipeline and so stopped after it. Plain swift-nio HTTP/1.1: three
/// read-only routes need no framework.
public struct StatusServer: Service {
    let address: HostAndPort
    let isRequired: Bool
    let routes: StatusRoutes
    let logger: Logger

    /// `isRequired`: failing to listen is a configuration error (an address the config named); otherwise
    /// a warning, and `run` goes on without the endpoint.
    public init(address: HostAndPort, isRequired: Bool, logger: Logger, routes: @escaping StatusRoutes) {
        self.address = address
        self.isRequired = isRequired
        self.routes = routes
        self.logger = logger
    }

    public func run() async throws {
        let routes = self.routes
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(StatusHandler(routes: routes))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            let problem = ConfigError(key: "http.address", problem: "cannot listen on \(address): \(error)",
                                      fix: "choose a free address (each consumer on a host needs its own port), or set `http.address: off`")
            if isRequired { throw problem }
            logger.warning("no status endpoint (/healthz, /readyz, /metrics): the default address is taken", metadata: [
                "error": "\(problem)",
            ])
            // Returning would end the group: wait for its shutdown like a running server.
            try? await gracefulShutdown()
            return
        }
        logger.info("http listening", metadata: ["address": "\(address.host)", "port": "\(channel.localAddress?.port ?? address.port)"])
        // Serves until the group shuts down; the pipeline stops first (reverse start order), so probes and
        // scrapes see it to the end.
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// Reads a request head, answers on its end, keeps the connection alive when the client asks.
private final class StatusHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: StatusRoutes
    private var head: HTTPRequestHead?

    init(routes: @escaping StatusRoutes) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            let path = String(request.uri.prefix { $0 != "?" })
            let response = request.method == .GET || request.method == .HEAD
                ? routes(path) : StatusResponse(status: .methodNotAllowed, body: "GET only\n")
            let body = context.channel.allocator.buffer(string: response.body)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            headers.add(name: "Cache-Control", value: "no-store")
            let keepAlive = request.isKeepAlive
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))),
                          promise: nil)
            if request.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
