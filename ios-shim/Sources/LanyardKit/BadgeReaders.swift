import CoreNFC
import SwiftUI
import UIKit

/// A keyboard-wedge badge reader (USB/Bluetooth HID): it "types" the badge number and a
/// Return. Keys arriving more than `gap` apart start a new read, so a person typing on a
/// keyboard is never taken for a badge.
public final class KeyboardWedgeReader {
    private var buffer = ""
    private var lastKey = Date.distantPast
    private let gap: TimeInterval
    private let onBadge: (String) -> Void

    public init(gap: TimeInterval = 0.1, onBadge: @escaping (String) -> Void) {
        self.gap = gap
        self.onBadge = onBadge
    }

    /// Feeds typed text; a newline completes the read.
    public func receive(_ text: String, at now: Date = Date()) {
        if now.timeIntervalSince(lastKey) > gap { buffer = "" }
        lastKey = now
        for ch in text {
            if ch == "\n" || ch == "\r" {
                let badge = buffer.trimmingCharacters(in: .whitespaces)
                buffer = ""
                if !badge.isEmpty { onBadge(badge) }
            } else {
                buffer.append(ch)
            }
        }
    }
}

/// An invisible first responder that takes the wedge reader's keystrokes while the
/// locker screen is up.
public struct KeyboardWedgeCapture: UIViewRepresentable {
    let reader: KeyboardWedgeReader

    public init(reader: KeyboardWedgeReader) {
        self.reader = reader
    }

    public func makeUIView(context: Context) -> KeyCaptureView {
        let view = KeyCaptureView()
        view.reader = reader
        DispatchQueue.main.async { view.becomeFirstResponder() }
        return view
    }

    public func updateUIView(_ view: KeyCaptureView, context: Context) {
        view.reader = reader
    }

    public final class KeyCaptureView: UIView, UIKeyInput {
        var reader: KeyboardWedgeReader?
        public override var canBecomeFirstResponder: Bool { true }
        public var hasText: Bool { false }
        public func insertText(_ text: String) { reader?.receive(text) }
        public func deleteBackward() {}
        // No on-screen keyboard: the reader is the keyboard.
        public override var inputView: UIView? { UIView() }
    }
}

/// 13.56 MHz badges (MIFARE, ISO 15693) read with Core NFC: the tag's UID, as hex, is
/// the badge id. iOS shows its NFC sheet while the session runs.
public final class NFCBadgeReader: NSObject, NFCTagReaderSessionDelegate {
    private var session: NFCTagReaderSession?
    private let onBadge: (String) -> Void
    private let onError: (String) -> Void

    public init(onBadge: @escaping (String) -> Void, onError: @escaping (String) -> Void) {
        self.onBadge = onBadge
        self.onError = onError
    }

    public static var isAvailable: Bool { NFCTagReaderSession.readingAvailable }

    public func begin() {
        guard Self.isAvailable else { onError("This iPhone cannot read NFC badges."); return }
        session = NFCTagReaderSession(pollingOption: [.iso14443, .iso15693], delegate: self)
        session?.alertMessage = "Hold your badge near the top of the iPhone."
        session?.begin()
    }

    public func tagReaderSessionDidBecomeActive(_ session: NFCTagReaderSession) {}

    public func tagReaderSession(_ session: NFCTagReaderSession, didInvalidateWithError error: Error) {
        let code = (error as? NFCReaderError)?.code
        if code != .readerSessionInvalidationErrorUserCanceled && code != .readerSessionInvalidationErrorFirstNDEFTagRead {
            onError(error.localizedDescription)
        }
        self.session = nil
    }

    public func tagReaderSession(_ session: NFCTagReaderSession, didDetect tags: [NFCTag]) {
        guard let tag = tags.first else { return }
        session.connect(to: tag) { [weak self] error in
            guard let self else { return }
            if let error {
                session.invalidate(errorMessage: error.localizedDescription)
                return
            }
            let uid: Data
            switch tag {
            case .miFare(let t): uid = t.identifier
            case .iso15693(let t): uid = t.identifier
            case .iso7816(let t): uid = t.identifier
            case .feliCa(let t): uid = t.currentIDm
            @unknown default:
                session.invalidate(errorMessage: "Unsupported badge.")
                return
            }
            session.alertMessage = "Badge read."
            session.invalidate()
            self.onBadge(uid.map { String(format: "%02X", $0) }.joined())
        }
    }
}
