import SpillwayCore

/// The objects Spillway owns in the source database, named once. Everything lives in one schema
/// (`spillway` by default), so `uninstall` is a DROP SCHEMA plus the triggers on captured tables.
public struct AuditLogSchema: Sendable {
    public let schema: String
    /// The audit table: Spillway's own or an adopted one. The capture function runs as its owner
    /// (SECURITY DEFINER), so writers need no privilege on it and cannot forge audit rows.
    public let auditTable: QualifiedName

    public init(config: SpillwayConfig) {
        schema = config.schema
        auditTable = config.source.auditTable ?? QualifiedName(schema: config.schema, name: "audit_log")
    }

    public init(schema: String, auditTable: QualifiedName) {
        self.schema = schema
        self.auditTable = auditTable
    }

    var schemaSQL: String { SQLText.identifier(schema) }
    public var checkpointsTable: String { "\(schemaSQL).checkpoints" }
    var sequence: String { "\(schemaSQL).audit_seq" }
    var captureFunction: String { "\(schemaSQL).capture_change" }
    var wakeFunction: String { "\(schemaSQL).wake_pollers" }
    var keepJSONTextFunction: String { "\(schemaSQL).keep_json_text" }
    /// The NOTIFY channel the wake trigger signals and pollers LISTEN on.
    public var wakeChannel: String { "\(schema)_audit" }
    static let captureTrigger = "spillway_capture"
    static let truncateTrigger = "spillway_capture_truncate"
    static let wakeTrigger = "spillway_wake"
    /// Functions of common hand-written audit setups; a table already feeding the adopted audit table
    /// through one of them gets no second row trigger from Spillway.
    static let adoptedTriggerFunctions = ["audit_trigger_func", "audit_trigger", "if_modified_func"]

    /// The columns Spillway reads, beyond the common shape. Added (nullable, then given a default) when an
    /// existing table is adopted, so no history row is rewritten: old rows keep NULL and read as history.
    var addedColumns: [(name: String, type: String, defaultSQL: String?)] {
        [
            ("schema_name", "text", nil),
            ("txid", "xid8", "pg_current_xact_id()"),
            // The per-row sequence number that orders a batch; see AuditLogOrdering for why it is taken
            // when the row is written. CACHE 1 (the default) keeps numbers global across sessions.
            ("seq", "bigint", "nextval('\(schema).audit_seq')"),
            ("tenant", "text", "nullif(current_setting('app.current_org_id', true), '')"),
        ]
    }

    func createSchemaSQL() -> String {
        """
        CREATE SCHEMA IF NOT EXISTS \(schemaSQL);
        CREATE SEQUENCE IF NOT EXISTS \(sequence) CACHE 1;
        CREATE TABLE IF NOT EXISTS \(checkpointsTable) (
            consumer text PRIMARY KEY,
            source text NOT NULL,
            audit_table text,
            position text,
            snapshot pg_snapshot,
            batch_snapshot pg_snapshot,
            batch_rank bigint,
            batch_seq bigint,
            history_done boolean NOT NULL DEFAULT false,
            history_changed_at timestamptz,
            history_id text,
            lsn pg_lsn,
            events_total bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            last_error text,
            last_error_at timestamptz,
            snapshot_progress jsonb
        );
        ALTER TABLE \(checkpointsTable) ADD COLUMN IF NOT EXISTS snapshot_progress jsonb;
        \(BackfillStore.createTableSQL(schema: schema))
        \(DeadLetterStore.createTableSQL(schema: schema))
        """
    }

    func createAuditTableSQL() -> String {
        """
        CREATE TABLE IF NOT EXISTS \(auditTable.sql) (
            id bigserial PRIMARY KEY,
            schema_name text,
            table_name text NOT NULL,
            operation text NOT NULL,
            old_data jsonb,
            new_data jsonb,
            changed_by text DEFAULT session_user,
            changed_at timestamptz NOT NULL DEFAULT now(),
            txid xid8 DEFAULT pg_current_xact_id(),
            seq bigint DEFAULT nextval('\(schema).audit_seq'),
            tenant text DEFAULT nullif(current_setting('app.current_org_id', true), '')
        )
        """
    }

    func indexSQL() -> String {
        let name = SQLText.identifier("\(auditTable.name)_spillway_txid_idx")
        return "CREATE INDEX IF NOT EXISTS \(name) ON \(auditTable.sql) (txid, seq)"
    }

    /// The row trigger's function. Its arguments, set per table by `rowTriggerSQL`: the captured table's schema
    /// and name (a partitioned table's partitions run clones of its trigger, with the same arguments, so their
    /// rows are recorded under the table the user captured), then the table's `json` columns, stored as
    /// strings holding their exact text (`to_jsonb` would merge duplicate keys and reorder them), then — after
    /// an empty argument, which no column name can be — `include` or `exclude` and the columns of the table's
    /// `source.tables[].columns`: an excluded column never reaches the audit table, which whoever may read the
    /// database can read.
    ///
    /// The SET clauses pin what `to_jsonb` renders values with (`PostgresConnection.pinnedSettings`), so an
    /// audit row does not depend on the writing session's TimeZone, IntervalStyle, bytea_output, ...
    func captureFunctionSQL() -> String {
        let pinned = PostgresConnection.pinnedSettings.map { "SET \($0.name) = \(SQLText.literal($0.value))" }.joined(separator: " ")
        return """
        CREATE OR REPLACE FUNCTION \(captureFunction)() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp \(pinned) AS $spillway$
        DECLARE
            old_row jsonb;
            new_row jsonb;
            json_columns text[];
            split integer;
            column_mode text;
            listed text[];
        BEGIN
            IF TG_LEVEL = 'STATEMENT' THEN
                INSERT INTO \(auditTable.sql) (schema_name, table_name, operation)
                VALUES (coalesce(TG_ARGV[0], TG_TABLE_SCHEMA), coalesce(TG_ARGV[1], TG_TABLE_NAME), TG_OP);
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
            IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
            IF TG_NARGS > 2 THEN
                json_columns := TG_ARGV[2:TG_NARGS - 1];
                split := array_position(json_columns, '');
                IF split IS NOT NULL THEN
                    column_mode := json_columns[split + 1];
                    listed := json_columns[split + 2:];
                    json_columns := json_columns[1:split - 1];
                END IF;
                IF cardinality(json_columns) > 0 THEN
                    IF old_row IS NOT NULL THEN old_row := \(keepJSONTextFunction)(old_row, row_to_json(OLD), json_columns); END IF;
                    IF new_row IS NOT NULL THEN new_row := \(keepJSONTextFunction)(new_row, row_to_json(NEW), json_columns); END IF;
                END IF;
                IF column_mode = 'exclude' THEN
                    old_row := old_row - listed;
                    new_row := new_row - listed;
                ELSIF column_mode = 'include' THEN
                    IF old_row IS NOT NULL THEN
                        old_row := (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(old_row) e WHERE e.key = ANY(listed));
                    END IF;
                    IF new_row IS NOT NULL THEN
                        new_row := (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(new_row) e WHERE e.key = ANY(listed));
                    END IF;
                END IF;
            END IF;
            INSERT INTO \(auditTable.sql) (schema_name, table_name, operation, old_data, new_data)
            VALUES (coalesce(TG_ARGV[0], TG_TABLE_SCHEMA), coalesce(TG_ARGV[1], TG_TABLE_NAME), TG_OP, old_row, new_row);
            RETURN NULL;
        END
        $spillway$
        """
    }

    /// `row_data` (`to_jsonb(row)`) with each of `columns` replaced by a string holding the column's exact
    /// text, taken from `exact` (`row_to_json(row)`, which keeps a json value as written). SQL NULL stays null.
    func keepJSONTextFunctionSQL() -> String {
        """
        CREATE OR REPLACE FUNCTION \(keepJSONTextFunction)(row_data jsonb, exact json, columns text[]) RETURNS jsonb
        LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $spillway$
        DECLARE
            name text;
        BEGIN
            FOREACH name IN ARRAY columns LOOP
                IF exact -> name IS NOT NULL AND json_typeof(exact -> name) <> 'null' THEN
                    row_data := jsonb_set(row_data, ARRAY[name], to_jsonb((exact -> name)::text));
                END IF;
            END LOOP;
            RETURN row_data;
        END
        $spillway$
        """
    }

    func wakeFunctionSQL() -> String {
        """
        CREATE OR REPLACE FUNCTION \(wakeFunction)() RETURNS trigger LANGUAGE plpgsql AS $spillway$
        BEGIN
            PERFORM pg_notify(\(SQLText.literal(wakeChannel)), '');
            RETURN NULL;
        END
        $spillway$
        """
    }

    /// `jsonColumns`: the table's `json` (not jsonb) columns, which the trigger keeps as exact text; `columns`
    /// the table's column policy (its include or exclude list is applied by the trigger).
    func rowTriggerSQL(on table: QualifiedName, jsonColumns: [String] = [], columns: ColumnPolicy? = nil) -> String {
        let arguments = Self.rowTriggerArguments(table: table, jsonColumns: jsonColumns, columns: columns)
            .map(SQLText.literal).joined(separator: ", ")
        return """
        DROP TRIGGER IF EXISTS \(Self.captureTrigger) ON \(table.sql);
        CREATE TRIGGER \(Self.captureTrigger) AFTER INSERT OR UPDATE OR DELETE ON \(table.sql)
        FOR EACH ROW EXECUTE FUNCTION \(captureFunction)(\(arguments))
        """
    }

    static func rowTriggerArguments(table: QualifiedName, jsonColumns: [String], columns: ColumnPolicy?) -> [String] {
        let selection = columns?.triggerArguments ?? []
        return [table.schema, table.name] + jsonColumns + (selection.isEmpty ? [] : [""] + selection)
    }

    /// A row trigger's arguments split as `rowTriggerArguments` wrote them.
    static func parseRowTriggerArguments(_ arguments: [String]) -> (jsonColumns: [String], selection: [String]) {
        let rest = Array(arguments.dropFirst(2))
        guard let split = rest.firstIndex(of: "") else { return (rest, []) }
        return (Array(rest[..<split]), Array(rest[(split + 1)...]))
    }

    func truncateTriggerSQL(on table: QualifiedName) -> String {
        let arguments = [table.schema, table.name].map(SQLText.literal).joined(separator: ", ")
        return """
        DROP TRIGGER IF EXISTS \(Self.truncateTrigger) ON \(table.sql);
        CREATE TRIGGER \(Self.truncateTrigger) AFTER TRUNCATE ON \(table.sql)
        FOR EACH STATEMENT EXECUTE FUNCTION \(captureFunction)(\(arguments))
        """
    }

    func wakeTriggerSQL() -> String {
        """
        DROP TRIGGER IF EXISTS \(Self.wakeTrigger) ON \(auditTable.sql);
        CREATE TRIGGER \(Self.wakeTrigger) AFTER INSERT ON \(auditTable.sql)
        FOR EACH STATEMENT EXECUTE FUNCTION \(wakeFunction)()
        """
    }
}
