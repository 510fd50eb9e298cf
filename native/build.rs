// The module calls into Envoy, whose callbacks only exist in the Envoy process: the shared
// library leaves them undefined (resolved by dlopen), and so may the unit-test binary, which
// never calls them.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--unresolved-symbols=ignore-all");
}
