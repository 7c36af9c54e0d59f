import Foundation
import LanyardCore

/// The MDM's managed app configuration (the `com.apple.configuration.managed` dictionary
/// in the app's defaults). Keys are documented in docs/ios.md; `$SERIALNUMBER$`-style
/// variables are filled in by the MDM before the phone sees them.
public struct ManagedAppConfig: Equatable {
    /// Defaults key under which iOS delivers the MDM's managed configuration.
    public static let defaultsKey = "com.apple.configuration.managed"

    public var serverURL: String?
    public var enrollmentToken: String?
    public var serialNumber: String?
    public var udid: String?
    public var deviceName: String?
    /// `lanyard-server emergency-pin-hash` output: the emergency PIN's PBKDF2 hash.
    public var emergencyPinHash: String?
    /// Per app (bundle id), the URL that asks it to log out and call back
    /// `lanyard://logout-finished?app=<bundle id>&result=ok|failed&detail=…`.
    public var logoutURLs: [String: URL]

    public init(_ dict: [String: Any]) {
        func string(_ key: String) -> String? {
            guard let v = dict[key] as? String else { return nil }
            let trimmed = v.trimmingCharacters(in: .whitespacesAndNewlines)
            // An MDM that has no value for a variable leaves it unexpanded.
            return trimmed.isEmpty || (trimmed.hasPrefix("$") && trimmed.hasSuffix("$")) ? nil : trimmed
        }
        serverURL = string("LanyardServerURL")
        enrollmentToken = string("LanyardEnrollmentToken")
        serialNumber = string("LanyardSerialNumber")
        udid = string("LanyardUDID")
        deviceName = string("LanyardDeviceName")
        emergencyPinHash = string("LanyardEmergencyPinHash")
        var urls: [String: URL] = [:]
        for (app, value) in (dict["LanyardLogoutURLs"] as? [String: Any]) ?? [:] {
            if let s = value as? String, let url = URL(string: s) { urls[app] = url }
        }
        logoutURLs = urls
    }

    /// The configuration iOS holds now.
    public static func current(_ defaults: UserDefaults = .standard) -> ManagedAppConfig {
        ManagedAppConfig(defaults.dictionary(forKey: defaultsKey) ?? [:])
    }

    /// What `LockerAgent.enrollWithManagedConfig` reads, or nil when the MDM has not
    /// pushed both values yet.
    public var enrollment: [String: String]? {
        guard let serverURL, let enrollmentToken else { return nil }
        return ["LanyardServerURL": serverURL, "LanyardEnrollmentToken": enrollmentToken]
    }

    /// What the phone tells the server about itself when it enrolls.
    public func deviceDetails(osVersion: String, model: String) -> DeviceDetails {
        DeviceDetails(serial: serialNumber, udid: udid, model: model, osVersion: osVersion, name: deviceName)
    }
}
