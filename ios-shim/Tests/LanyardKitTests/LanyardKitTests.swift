import XCTest
@testable import LanyardKit

final class ManagedAppConfigTests: XCTestCase {
    func testReadsTheDocumentedKeysAndIgnoresUnexpandedVariables() {
        let config = ManagedAppConfig([
            "LanyardServerURL": " https://lanyard.stmary.org ",
            "LanyardEnrollmentToken": "tok-1",
            "LanyardSerialNumber": "$SERIALNUMBER$",
            "LanyardUDID": "00008030-001A",
            "LanyardLogoutURLs": ["com.epic.rover": "rover://logout"],
            "LanyardEmergencyPinHash": "pbkdf2-sha256$100000$c2FsdHNhbHQ$AAAA",
        ])
        XCTAssertEqual(config.enrollment, ["LanyardServerURL": "https://lanyard.stmary.org",
                                           "LanyardEnrollmentToken": "tok-1"])
        XCTAssertNil(config.serialNumber)
        XCTAssertEqual(config.udid, "00008030-001A")
        XCTAssertEqual(config.emergencyPinHash, "pbkdf2-sha256$100000$c2FsdHNhbHQ$AAAA")
        XCTAssertEqual(config.logoutURLs["com.epic.rover"], URL(string: "rover://logout"))
        XCTAssertNil(ManagedAppConfig(["LanyardServerURL": "https://x.org"]).enrollment)
    }
}

final class KeyboardWedgeReaderTests: XCTestCase {
    func testAReadEndsAtReturnAndSlowTypingStartsOver() {
        var badges: [String] = []
        let reader = KeyboardWedgeReader(gap: 0.1) { badges.append($0) }
        let t0 = Date()
        reader.receive("00123", at: t0)
        reader.receive("45\n", at: t0.addingTimeInterval(0.02))
        reader.receive("99", at: t0.addingTimeInterval(1))
        reader.receive("7\n", at: t0.addingTimeInterval(2))
        XCTAssertEqual(badges, ["0012345", "7"])
    }
}

final class DockMonitorTests: XCTestCase {
    func testBatteryStatesMapToDockChanges() {
        XCTAssertEqual(DockMonitor.change(for: .charging), .docked)
        XCTAssertEqual(DockMonitor.change(for: .full), .docked)
        XCTAssertEqual(DockMonitor.change(for: .unplugged), .undocked)
        XCTAssertNil(DockMonitor.change(for: .unknown))
    }
}
