extension PGOutputMessage {
    /// Decodes one pgoutput message, the payload of an XLogData.
    ///
    /// - Parameters:
    ///   - bytes: exactly one message, starting with its type byte.
    ///   - inStreamBlock: whether the message arrived between Stream Start and Stream Stop;
    ///     in protocol v2 the data messages then start with the streamed transaction's id.
    ///     ``PGOutputDecoder`` tracks this for you.
    /// - Throws: ``PGOutputDecodingError`` for truncated, overlong or malformed input.
    public init(decoding bytes: ArraySlice<UInt8>, inStreamBlock: Bool) throws(PGOutputDecodingError) {
        var reader = ByteReader(bytes, messageName: "pgoutput")
        let type = try reader.readUInt8("message type byte")
        reader.messageType = type
        guard let name = Self.name(ofType: type) else {
            throw reader.error(.unknownMessageType, at: 0)
        }
        reader.messageName = name
        self = try Self.decodeBody(type: type, from: &reader, inStreamBlock: inStreamBlock)
        try reader.expectEnd()
    }

    /// Decodes one pgoutput message; like the `ArraySlice` overload.
    public init(decoding bytes: [UInt8], inStreamBlock: Bool) throws(PGOutputDecodingError) {
        try self.init(decoding: bytes[...], inStreamBlock: inStreamBlock)
    }

    /// The docs' name for a message type byte, or `nil` if pgoutput v1/v2 has no such message.
    public static func name(ofType type: UInt8) -> String? {
        switch type {
        case UInt8(ascii: "B"): "Begin"
        case UInt8(ascii: "C"): "Commit"
        case UInt8(ascii: "O"): "Origin"
        case UInt8(ascii: "R"): "Relation"
        case UInt8(ascii: "Y"): "Type"
        case UInt8(ascii: "I"): "Insert"
        case UInt8(ascii: "U"): "Update"
        case UInt8(ascii: "D"): "Delete"
        case UInt8(ascii: "T"): "Truncate"
        case UInt8(ascii: "M"): "Message"
        case UInt8(ascii: "S"): "Stream Start"
        case UInt8(ascii: "E"): "Stream Stop"
        case UInt8(ascii: "c"): "Stream Commit"
        case UInt8(ascii: "A"): "Stream Abort"
        default: nil
        }
    }

    // Arguments evaluate left to right, so each initializer below reads fields in wire order.
    private static func decodeBody(
        type: UInt8, from reader: inout ByteReader, inStreamBlock: Bool
    ) throws(PGOutputDecodingError) -> PGOutputMessage {
        switch type {
        case UInt8(ascii: "B"):
            return try .begin(Begin(finalLSN: reader.readLSN("final LSN"),
                                    commitTimestamp: reader.readTimestamp("commit timestamp"),
                                    xid: reader.readUInt32("transaction id")))
        case UInt8(ascii: "C"):
            return try .commit(Commit(flags: reader.readUInt8("flags"),
                                      commitLSN: reader.readLSN("commit LSN"),
                                      endLSN: reader.readLSN("end LSN"),
                                      commitTimestamp: reader.readTimestamp("commit timestamp")))
        case UInt8(ascii: "O"):
            return try .origin(Origin(commitLSN: reader.readLSN("origin commit LSN"),
                                      name: reader.readCString("origin name")))
        case UInt8(ascii: "R"):
            return try .relation(reader.readRelation(inStreamBlock: inStreamBlock))
        case UInt8(ascii: "Y"):
            return try .type(TypeDefinition(streamXID: reader.readStreamXID(inStreamBlock),
                                            id: reader.readUInt32("type OID"),
                                            namespace: reader.readCString("namespace"),
                                            name: reader.readCString("type name")))
        case UInt8(ascii: "I"):
            let streamXID = try reader.readStreamXID(inStreamBlock)
            let relationID = try reader.readUInt32("relation id")
            try reader.expectMarker(UInt8(ascii: "N"), "new tuple marker", allowed: "'N'")
            return try .insert(Insert(streamXID: streamXID, relationID: relationID,
                                      newTuple: reader.readTupleData()))
        case UInt8(ascii: "U"):
            let streamXID = try reader.readStreamXID(inStreamBlock)
            let relationID = try reader.readUInt32("relation id")
            let markerOffset = reader.offset
            var oldTuple: OldTuple?
            switch try reader.readUInt8("tuple marker") {
            case UInt8(ascii: "K"): oldTuple = .key(try reader.readTupleData())
            case UInt8(ascii: "O"): oldTuple = .full(try reader.readTupleData())
            case UInt8(ascii: "N"): oldTuple = nil
            case let marker:
                throw reader.error(.invalidByte(marker, field: "tuple marker", allowed: "'K', 'O' or 'N'"),
                                   at: markerOffset)
            }
            if oldTuple != nil {
                try reader.expectMarker(UInt8(ascii: "N"), "new tuple marker", allowed: "'N'")
            }
            return try .update(Update(streamXID: streamXID, relationID: relationID,
                                      oldTuple: oldTuple, newTuple: reader.readTupleData()))
        case UInt8(ascii: "D"):
            let streamXID = try reader.readStreamXID(inStreamBlock)
            let relationID = try reader.readUInt32("relation id")
            let markerOffset = reader.offset
            let oldTuple: OldTuple
            switch try reader.readUInt8("old tuple marker") {
            case UInt8(ascii: "K"): oldTuple = .key(try reader.readTupleData())
            case UInt8(ascii: "O"): oldTuple = .full(try reader.readTupleData())
            case let marker:
                throw reader.error(.invalidByte(marker, field: "old tuple marker", allowed: "'K' or 'O'"),
                                   at: markerOffset)
            }
            return .delete(Delete(streamXID: streamXID, relationID: relationID, oldTuple: oldTuple))
        case UInt8(ascii: "T"):
            let streamXID = try reader.readStreamXID(inStreamBlock)
            let count = try reader.readCount(as: Int32.self, "relation count")
            let options = TruncateOptions(rawValue: try reader.readUInt8("options"))
            var relationIDs: [OID] = []
            // The count is untrusted: reserve no more than the bytes present could hold.
            relationIDs.reserveCapacity(min(count, reader.remainingCount / 4))
            for index in 0..<count {
                relationIDs.append(try reader.readUInt32("relation id \(index + 1) of \(count)"))
            }
            return .truncate(Truncate(streamXID: streamXID, options: options, relationIDs: relationIDs))
        case UInt8(ascii: "M"):
            return try .logicalMessage(LogicalMessage(
                streamXID: reader.readStreamXID(inStreamBlock),
                isTransactional: reader.readUInt8("flags") & 1 != 0,
                lsn: reader.readLSN("message LSN"),
                prefix: reader.readCString("prefix"),
                content: reader.readLengthPrefixedBytes("content")))
        case UInt8(ascii: "S"):
            return try .streamStart(StreamStart(xid: reader.readUInt32("transaction id"),
                                                isFirstSegment: reader.readUInt8("first segment flag") == 1))
        case UInt8(ascii: "E"):
            return .streamStop
        case UInt8(ascii: "c"):
            return try .streamCommit(StreamCommit(xid: reader.readUInt32("transaction id"),
                                                  flags: reader.readUInt8("flags"),
                                                  commitLSN: reader.readLSN("commit LSN"),
                                                  endLSN: reader.readLSN("end LSN"),
                                                  commitTimestamp: reader.readTimestamp("commit timestamp")))
        case UInt8(ascii: "A"):
            return try .streamAbort(StreamAbort(xid: reader.readUInt32("transaction id"),
                                                subtransactionXID: reader.readUInt32("subtransaction id")))
        default:
            // `name(ofType:)` already rejected every other byte.
            throw reader.error(.unknownMessageType, at: 0)
        }
    }
}

extension ByteReader {
    mutating func readStreamXID(_ inStreamBlock: Bool) throws(PGOutputDecodingError) -> TransactionID? {
        if inStreamBlock { try readUInt32("streamed transaction id") } else { nil }
    }

    /// Reads a signed count and rejects negative values, reporting the count's own offset.
    mutating func readCount<T: FixedWidthInteger & SignedInteger>(
        as type: T.Type, _ field: @autoclosure FieldName
    ) throws(PGOutputDecodingError) -> Int {
        let countOffset = offset
        let count = try readInteger(as: T.self, field())
        guard count >= 0 else { throw error(.negativeLength(Int64(count), field: field()), at: countOffset) }
        return Int(count)
    }

    mutating func expectMarker(
        _ expected: UInt8, _ field: @autoclosure FieldName, allowed: String
    ) throws(PGOutputDecodingError) {
        let markerOffset = offset
        let marker = try readUInt8(field())
        guard marker == expected else {
            throw error(.invalidByte(marker, field: field(), allowed: allowed), at: markerOffset)
        }
    }

    mutating func readRelation(inStreamBlock: Bool) throws(PGOutputDecodingError) -> PGOutputMessage.Relation {
        let streamXID = try readStreamXID(inStreamBlock)
        let id = try readUInt32("relation id")
        let namespace = try readCString("namespace")
        let name = try readCString("relation name")
        let identityOffset = offset
        let identityByte = try readUInt8("replica identity")
        guard let replicaIdentity = PGOutputMessage.Relation.ReplicaIdentity(rawValue: identityByte) else {
            throw error(.invalidByte(identityByte, field: "replica identity",
                                     allowed: "'d', 'n', 'f' or 'i'"), at: identityOffset)
        }
        let count = try readCount(as: Int16.self, "column count")
        var columns: [PGOutputMessage.Relation.Column] = []
        columns.reserveCapacity(count)
        for index in 0..<count {
            try columns.append(.init(flags: .init(rawValue: readUInt8("flags of column \(index + 1)")),
                                     name: readCString("name of column \(index + 1)"),
                                     typeOID: readUInt32("type OID of column \(index + 1)"),
                                     typeModifier: readInt32("type modifier of column \(index + 1)")))
        }
        return .init(streamXID: streamXID, id: id, namespace: namespace, name: name,
                     replicaIdentity: replicaIdentity, columns: columns)
    }

    mutating func readTupleData() throws(PGOutputDecodingError) -> TupleData {
        let count = try readCount(as: Int16.self, "tuple column count")
        var values: [TupleValue] = []
        values.reserveCapacity(count)
        for index in 0..<count {
            let kindOffset = offset
            switch try readUInt8("kind of column \(index + 1)") {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"): values.append(.text(try readLengthPrefixedBytes("text of column \(index + 1)")))
            case UInt8(ascii: "b"): values.append(.binary(try readLengthPrefixedBytes("binary of column \(index + 1)")))
            case let kind:
                throw error(.invalidByte(kind, field: "tuple column kind of column \(index + 1)",
                                         allowed: "'n', 'u', 't' or 'b'"), at: kindOffset)
            }
        }
        return TupleData(values)
    }
}
