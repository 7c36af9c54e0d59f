import Foundation
import LanyardCore
import SwiftUI
import UIKit

/// Owns the agent for the app: opens it, enrolls from managed configuration, runs sync,
/// feeds dock and badge events, and publishes the screen for SwiftUI. Agent calls that
/// may reach the network run off the main thread.
@MainActor
public final class LockerController: ObservableObject {
    @Published public private(set) var screen: ScreenModel = .enrollment
    @Published public private(set) var problem: String?

    private var agent: LockerAgent?
    private var sync: SyncHandle?
    private let dock = DockMonitor()
    private var config = ManagedAppConfig.current()
    public private(set) lazy var wedge = KeyboardWedgeReader { [weak self] in self?.badgeTapped($0) }
    public private(set) lazy var nfc = NFCBadgeReader(
        onBadge: { [weak self] badge in Task { @MainActor in self?.badgeTapped(badge) } },
        onError: { [weak self] why in Task { @MainActor in self?.problem = why } })

    public init() {}

    /// Opens the agent in Application Support; call once at launch.
    public func start() {
        do {
            let dir = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                  appropriateFor: nil, create: true)
                .appendingPathComponent("Lanyard", isDirectory: true)
            let presenter = Presenter { [weak self] screen in
                Task { @MainActor in self?.show(screen) }
            }
            let agent = try LockerAgent(
                dataDir: dir.path, presenter: presenter,
                apps: URLAppSessions(urls: { ManagedAppConfig.current().logoutURLs }),
                secrets: KeychainSecretStorage(), notifier: LocalNotifier(), clock: nil)
            self.agent = agent
            show(agent.currentScreen())
            sync = try agent.startSync(settings: SyncSettings())
            applyEmergencyPin()
            enrollIfConfigured()
            dock.start(onChange: { [weak self] change in self?.docked(change) },
                       onBattery: { [weak self] level in self?.battery(level) })
            NotificationCenter.default.addObserver(forName: UserDefaults.didChangeNotification, object: nil,
                                                   queue: .main) { [weak self] _ in
                MainActor.assumeIsolated { self?.managedConfigChanged() }
            }
        } catch {
            problem = "\(error)"
        }
    }

    /// Enrolls once the MDM has pushed the server URL and token.
    private func enrollIfConfigured() {
        guard let agent, case .enrollment = screen, let enrollment = config.enrollment else { return }
        let device = config.deviceDetails(osVersion: UIDevice.current.systemVersion, model: Self.model())
        Task.detached {
            do {
                let screen = try agent.enrollWithManagedConfig(config: enrollment, device: device)
                await MainActor.run { self.show(screen) }
            } catch {
                await MainActor.run { self.problem = "\(error)" }
            }
        }
    }

    private func managedConfigChanged() {
        let now = ManagedAppConfig.current()
        guard now != config else { return }
        config = now
        applyEmergencyPin()
        enrollIfConfigured()
    }

    /// The MDM's emergency PIN hash (used while the signed policy sets none).
    private func applyEmergencyPin() {
        let hash = config.emergencyPinHash
        run { agent in try agent.setManagedEmergencyPin(hash: hash) }
    }

    public func badgeTapped(_ badge: String) {
        run { try $0.badgeTapped(badge: badge) }
    }

    public func login(username: String, password: String) {
        run { try $0.passwordEntered(username: username, password: password) }
    }

    public func enterPin(_ pin: String) {
        run { try $0.pinEntered(pin: pin) }
    }

    private func docked(_ change: DockMonitor.Change) {
        switch change {
        case .docked: run { try $0.docked(cart: nil, port: nil) }
        case .undocked: run { try $0.undocked() }
        }
    }

    private func battery(_ level: UInt8) {
        // Read on the main actor; the agent call runs off it.
        let os = UIDevice.current.systemVersion
        run { try $0.platformFacts(facts: DeviceFacts(osVersion: os, batteryPercent: level)) }
    }

    /// `lanyard://logout-finished?app=<bundle id>&result=ok|failed&detail=…` from an app
    /// asked to log out.
    public func handle(url: URL) {
        guard url.scheme == "lanyard", url.host == "logout-finished",
              let items = URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems,
              let app = items.first(where: { $0.name == "app" })?.value else { return }
        let ok = items.first(where: { $0.name == "result" })?.value == "ok"
        let detail = items.first(where: { $0.name == "detail" })?.value ?? "the app reported a failure"
        run { try $0.appLogoutFinished(bundleId: app, failure: ok ? nil : detail) }
    }

    /// The app came to the foreground: time may have passed while it was suspended.
    public func resumed() {
        run { try $0.tick() }
    }

    private func run(_ call: @escaping (LockerAgent) throws -> ScreenModel) {
        guard let agent else { return }
        Task.detached {
            do {
                let screen = try call(agent)
                await MainActor.run { self.show(screen) }
            } catch {
                await MainActor.run { self.problem = "\(error)" }
            }
        }
    }

    private func show(_ screen: ScreenModel) {
        self.screen = screen
        // Autonomous Single App Mode: the locker holds the phone unless it is checked out.
        let unlocked: Bool
        switch screen {
        case .checkoutPending, .checkedOut: unlocked = true
        default: unlocked = false
        }
        if UIAccessibility.isGuidedAccessEnabled == unlocked {
            UIAccessibility.requestGuidedAccessSession(enabled: !unlocked) { _ in }
        }
    }

    private static func model() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}

/// Hands screens from the agent's threads to the main actor.
final class Presenter: ScreenPresenter, @unchecked Sendable {
    private let onScreen: (ScreenModel) -> Void

    init(onScreen: @escaping (ScreenModel) -> Void) {
        self.onScreen = onScreen
    }

    func showScreen(screen: ScreenModel) throws {
        onScreen(screen)
    }

    func openBlankPage() throws {
        // The locker itself is the blank page: bringing it forward hides the last user's
        // app while the apps log out.
        DispatchQueue.main.async {
            UIApplication.shared.open(URL(string: "lanyard://blank")!)
        }
    }
}
