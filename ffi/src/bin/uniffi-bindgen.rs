//! uniffi's binding generator, built against the same uniffi as the library:
//! `uniffi-bindgen generate --library libsmartmesh_ffi.so --language kotlin --out-dir DIR`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
