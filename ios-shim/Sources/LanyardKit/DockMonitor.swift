import Foundation
import UIKit

/// Dock detection from the battery state: a phone in a charging cart reports `.charging`
/// or `.full`, one taken out `.unplugged`. Also reports the battery level.
@MainActor
public final class DockMonitor {
    public enum Change: Equatable {
        case docked
        case undocked
    }

    private var observers: [NSObjectProtocol] = []
    private var last: Change?

    public init() {}

    /// Starts watching; `onChange` gets the current state at once, then every change.
    public func start(onChange: @escaping (Change) -> Void, onBattery: @escaping (UInt8) -> Void) {
        let device = UIDevice.current
        device.isBatteryMonitoringEnabled = true
        let center = NotificationCenter.default
        let report = { [weak self] in
            guard let self else { return }
            if let change = Self.change(for: device.batteryState), change != self.last {
                self.last = change
                onChange(change)
            }
        }
        observers.append(center.addObserver(forName: UIDevice.batteryStateDidChangeNotification,
                                            object: nil, queue: .main) { _ in
            MainActor.assumeIsolated { report() }
        })
        observers.append(center.addObserver(forName: UIDevice.batteryLevelDidChangeNotification,
                                            object: nil, queue: .main) { _ in
            let level = device.batteryLevel
            if level >= 0 { onBattery(UInt8((level * 100).rounded())) }
        })
        report()
    }

    public func stop() {
        observers.forEach { NotificationCenter.default.removeObserver($0) }
        observers.removeAll()
    }

    /// `.unknown` (the simulator, monitoring off) tells nothing.
    nonisolated static func change(for state: UIDevice.BatteryState) -> Change? {
        switch state {
        case .charging, .full: return .docked
        case .unplugged: return .undocked
        default: return nil
        }
    }
}
