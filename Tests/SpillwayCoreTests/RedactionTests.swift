import Testing
@testable import SpillwayCore

@Suite("Connection string redaction")
struct RedactionTests {
    @Test(arguments: [
        ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
        ("postgresql://spillway:secret@db.internal:5432/shop?sslmode=require",
         "postgresql://spillway:***@db.internal:5432/shop?sslmode=require"),
        ("postgres://u:s%40cr%2Fet@h/db", "postgres://u:***@h/db"),
        ("postgres://u:p@secret@h/db", "postgres://u:***@h/db"),
        ("postgres://u:secret@h1:5432,h2:5433/db", "postgres://u:***@h1:5432,h2:5433/db"),
        ("postgres://u:secret@h", "postgres://u:***@h"),
        ("host=x password=secret user=y", "host=x password=*** user=y"),
        ("password=secret host=x", "password=*** host=x"),
        ("host=x user=y password=secret", "host=x user=y password=***"),
        ("host=x password='se cret' user=y", "host=x password=*** user=y"),
        (#"host=x password='it\'s secret' user=y"#, "host=x password=*** user=y"),
        ("postgres://h/db?password=secret", "postgres://h/db?password=***"),
        ("postgres://h/db?sslmode=require&password=secret&user=y", "postgres://h/db?sslmode=require&password=***&user=y"),
        ("postgres://u:secret@h/db?password=secret", "postgres://u:***@h/db?password=***"),
    ])
    func passwordsAreReplaced(input: String, redacted: String) {
        let output = ConnectionString.redacting(input)
        #expect(output == redacted)
        #expect(!output.contains("secret"))
    }

    @Test(arguments: [
        "postgres://u@h/db",
        "postgres://h:5432/db",
        "postgres://u@h:5432/db?sslmode=require",
        "postgres:///db?host=/var/run/postgresql",
        "host=x user=y dbname=z",
        "host=x passfile=/home/u/.pgpass",
        "host=x application_name=mypassword=1",
        "",
    ])
    func textWithoutPasswordIsUnchanged(input: String) {
        #expect(ConnectionString.redacting(input) == input)
    }

    @Test func redactedURLOfDatabaseConfig() {
        #expect(DatabaseConfig(url: "postgres://u:hunter2@h/db").redactedURL == "postgres://u:***@h/db")
    }

    /// libpq reads the user info up to the last `@` before the first `/`, so an unencoded `?` or `#` in the
    /// password is still the password; the redacted text must not show any of it.
    @Test(arguments: ["postgres://u:sec?ret@h/db", "postgres://u:sec#ret@h/db"])
    func unencodedSpecialCharactersInURLPassword(input: String) {
        let output = ConnectionString.redacting(input)
        #expect(output == "postgres://u:***@h/db")
        #expect(!output.contains("sec"))
    }

    /// libpq allows blanks around `=` in the keyword form (`password = secret`), and any white space
    /// (tabs, newlines) between parameters.
    @Test(arguments: [
        "host=x password = secret user=y", "host=x password =secret user=y", "host=x password= secret user=y",
        "host=x\tpassword=secret user=y", "host=x\npassword=secret",
    ])
    func keywordFormWithBlanksAroundEquals(input: String) {
        #expect(!ConnectionString.redacting(input).contains("secret"))
    }
}
