import Foundation
import LanyardCore
import Security
import UIKit
import UserNotifications

/// The device credential in the Keychain: this device only, readable after the first
/// unlock (the locker runs before anyone unlocks the phone again).
public final class KeychainSecretStorage: SecretStorage, @unchecked Sendable {
    private let service: String

    public init(service: String = "org.lanyard.locker") {
        self.service = service
    }

    private func query(_ key: String) -> [String: Any] {
        [kSecClass as String: kSecClassGenericPassword,
         kSecAttrService as String: service,
         kSecAttrAccount as String: key]
    }

    public func get(key: String) throws -> Data? {
        var q = query(key)
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &item)
        switch status {
        case errSecSuccess: return item as? Data
        case errSecItemNotFound: return nil
        default: throw HostError.Failed(reason: "Keychain read failed (\(status))")
        }
    }

    public func put(key: String, value: Data) throws {
        let update = [kSecValueData as String: value]
        var status = SecItemUpdate(query(key) as CFDictionary, update as CFDictionary)
        if status == errSecItemNotFound {
            var add = query(key)
            add[kSecValueData as String] = value
            add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else {
            throw HostError.Failed(reason: "Keychain write failed (\(status))")
        }
    }

    public func delete(key: String) throws {
        let status = SecItemDelete(query(key) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw HostError.Failed(reason: "Keychain delete failed (\(status))")
        }
    }
}

/// Alerts to whoever holds the phone (an overdue checkout, a compliance warning).
public final class LocalNotifier: Notifier, @unchecked Sendable {
    public init() {}

    public func notify(text: String) throws {
        let content = UNMutableNotificationContent()
        content.title = "Lanyard"
        content.body = text
        content.sound = .default
        let request = UNNotificationRequest(identifier: UUID().uuidString, content: content, trigger: nil)
        UNUserNotificationCenter.current().add(request)
    }
}

/// Logs clinical apps out at check-in by opening each app's logout URL (from managed
/// configuration); the app calls back `lanyard://logout-finished?...`, which
/// `LockerController.handle(url:)` reports to the agent. An app with no URL configured
/// is reported failed at once (the agent records it and the check-in goes on).
public final class URLAppSessions: AppSessions, @unchecked Sendable {
    private let urls: () -> [String: URL]

    public init(urls: @escaping () -> [String: URL]) {
        self.urls = urls
    }

    public func logOut(app: AppToLogOut) throws {
        guard let url = urls()[app.bundleId] else {
            throw HostError.Failed(reason: "no logout URL configured for \(app.name) (\(app.bundleId))")
        }
        DispatchQueue.main.async {
            UIApplication.shared.open(url)
        }
    }
}
