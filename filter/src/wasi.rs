//! The filter's one FFI module: the process environment Envoy gives the VM through WASI
//! (`vm_config.environment_variables.host_env_keys`). proxy-wasm has no call for it, and
//! `std::env` on `wasm32-unknown-unknown` sees nothing.
#![allow(unsafe_code)]

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn environ_sizes_get(count: *mut usize, buf_len: *mut usize) -> u16;
    fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u16;
}

/// Built for the host (the workspace's tests and lints): the process environment.
#[cfg(not(target_arch = "wasm32"))]
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The value of `name` in the VM's environment.
#[cfg(target_arch = "wasm32")]
pub fn var(name: &str) -> Option<String> {
    let (mut count, mut len) = (0usize, 0usize);
    // SAFETY: both pointers are to live locals the host writes one usize into.
    if unsafe { environ_sizes_get(&mut count, &mut len) } != 0 || count == 0 {
        return None;
    }
    let mut pointers = vec![std::ptr::null_mut::<u8>(); count];
    let mut buf = vec![0u8; len];
    // SAFETY: the host writes `count` pointers into `pointers` and `len` bytes into `buf`,
    // the sizes it just reported; both vectors outlive the call.
    if unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return None;
    }
    // The pointers point into `buf`: NUL-terminated `NAME=value` entries, one after another.
    buf.split(|b| *b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let (k, v) = entry.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}
