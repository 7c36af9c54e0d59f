import LanyardCore
import SwiftUI

/// The locker app's screens, one per `ScreenModel` case, with password sign-in and the
/// emergency PIN pad on the locked screen.
public struct LockerRootView: View {
    @ObservedObject var controller: LockerController
    @State private var sheet: Sheet?

    enum Sheet: Identifiable {
        case password, pin
        var id: Self { self }
    }

    public init(controller: LockerController) {
        self.controller = controller
    }

    public var body: some View {
        ZStack {
            content
            KeyboardWedgeCapture(reader: controller.wedge).frame(width: 0, height: 0)
        }
        .sheet(item: $sheet) { which in
            switch which {
            case .password: PasswordLoginView { controller.login(username: $0, password: $1); sheet = nil }
            case .pin: PinPadView { controller.enterPin($0); sheet = nil }
            }
        }
    }

    @ViewBuilder private var content: some View {
        switch controller.screen {
        case .enrollment:
            VStack(spacing: 16) {
                Image(systemName: "iphone").font(.system(size: 56))
                Text("Waiting for enrollment").font(.title2)
                Text("IT pushes this phone's Lanyard configuration through the MDM.")
                    .multilineTextAlignment(.center).foregroundStyle(.secondary)
                if let problem = controller.problem { Text(problem).foregroundStyle(.red) }
            }.padding()
        case let .locked(text, notice, busy):
            VStack(spacing: 20) {
                Image(systemName: "lock.fill").font(.system(size: 56))
                Text(text).font(.title2).multilineTextAlignment(.center)
                if busy { ProgressView() }
                if let notice { Text(notice).font(.headline).foregroundStyle(.orange) }
                HStack {
                    Button("Sign in with password") { sheet = .password }
                    Button("Emergency PIN") { sheet = .pin }
                }
                if NFCBadgeReader.isAvailable {
                    Button("Tap badge on iPhone") { controller.nfc.begin() }
                }
            }.padding()
        case let .checkoutPending(displayName, text, _):
            VStack(spacing: 16) {
                Text(text).font(.title2)
                Text(displayName).font(.largeTitle.bold())
                Text("Unplug the phone to start.").foregroundStyle(.secondary)
            }.padding()
        case let .checkedOut(displayName, text, dueAt, overdue):
            VStack(spacing: 16) {
                Text(text).font(.title2)
                Text(displayName).font(.largeTitle.bold())
                Text("Due back \(dueAt.formatted(date: .omitted, time: .shortened))")
                    .foregroundStyle(overdue ? .red : .secondary)
                if overdue { Text("This device is overdue. Please return it to its cart.").foregroundStyle(.red) }
            }.padding()
        case let .blocked(reasons, displayName):
            VStack(alignment: .leading, spacing: 12) {
                Label("Locked", systemImage: "exclamationmark.lock.fill").font(.title)
                if let displayName { Text(displayName).font(.headline) }
                ForEach(reasons, id: \.self) { Text("• \($0)") }
            }.padding()
        }
    }
}

/// Username and password, for a clinician without a badge.
struct PasswordLoginView: View {
    let submit: (String, String) -> Void
    @State private var username = ""
    @State private var password = ""

    var body: some View {
        Form {
            TextField("Username", text: $username).textContentType(.username).autocorrectionDisabled()
                .textInputAutocapitalization(.never)
            SecureField("Password", text: $password).textContentType(.password)
            Button("Sign in") { submit(username, password) }.disabled(username.isEmpty || password.isEmpty)
        }
    }
}

/// The emergency unlock PIN pad (checked on the phone against the signed policy).
struct PinPadView: View {
    let submit: (String) -> Void
    @State private var digits = ""

    var body: some View {
        VStack(spacing: 12) {
            Text(String(repeating: "●", count: digits.count)).font(.title).frame(height: 40)
            ForEach([["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["⌫", "0", "OK"]], id: \.self) { row in
                HStack(spacing: 12) {
                    ForEach(row, id: \.self) { key in
                        Button(key) { press(key) }
                            .frame(width: 72, height: 56).background(.quaternary).clipShape(Capsule())
                    }
                }
            }
        }.padding()
    }

    private func press(_ key: String) {
        switch key {
        case "⌫": if !digits.isEmpty { digits.removeLast() }
        case "OK": if !digits.isEmpty { submit(digits); digits = "" }
        default: if digits.count < 12 { digits.append(key) }
        }
    }
}
