//! `uniffi-bindgen-swift LIB OUT_DIR --swift-sources --headers --modulemap`: the Swift
//! files, C header and modulemap an XCFramework needs, with control over the module name.

fn main() {
    uniffi::uniffi_bindgen_swift()
}
