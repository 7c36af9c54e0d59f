// The locker app's entry point. Add this file to an iOS app target in Xcode that depends
// on the LanyardKit product (docs/ios.md); a Swift package cannot declare the app itself.
import LanyardKit
import SwiftUI

@main
struct LanyardLockerApp: App {
    @StateObject private var controller = LockerController()
    @Environment(\.scenePhase) private var phase

    var body: some Scene {
        WindowGroup {
            LockerRootView(controller: controller)
                .onAppear { controller.start() }
                .onOpenURL { controller.handle(url: $0) }
        }
        .onChange(of: phase) { newPhase in
            if newPhase == .active { controller.resumed() }
        }
    }
}
