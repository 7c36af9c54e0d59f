//! `uniffi-bindgen generate --library target/debug/liblanyard_ffi.so --language python|kotlin|swift --out-dir DIR`

fn main() {
    uniffi::uniffi_bindgen_main()
}
