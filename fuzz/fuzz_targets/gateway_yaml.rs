//! The gateway-YAML loader, on any text an operator (or a broken editor) can write: a
//! gateway or an error that says where, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::config::env::Environment;
use switchboard::config::load_str;

fuzz_target!(|text: &str| {
    let env = Environment::from_pairs(&[("TOKEN", "t0k")]);
    match load_str(text, "fuzz.yaml", &env) {
        Ok(g) => {
            let _ = g.warnings();
        }
        Err(e) => assert!(!e.message.is_empty(), "an error says what is wrong"),
    }
});
