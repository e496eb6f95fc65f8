import Testing

@testable import SpillwayCore

@Suite("tenant_fallback: {default:} in templates (no servers)")
struct TenantFallbackTemplateTests {
    @Test func tenantFallbackDefaultFillsOnlyAMissingTenant() throws {
        let template = try EventTemplate(parsing: "{tenant}.{table}.{tenant|own}").fillingMissingTenant(with: "shared")
        var event = ChangeEvent(id: "1-1", op: .insert, schema: "public", table: "orders", after: ["id": .number("1")], position: "1/1")
        #expect(template.rendered(event, as: .topicName) == "shared.orders.own")
        event.tenant = "acme"
        #expect(template.rendered(event, as: .topicName) == "acme.orders.acme")
        #expect(template.text == "{tenant}.{table}.{tenant|own}")
    }
}
