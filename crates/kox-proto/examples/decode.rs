//! Decodes a Kubernetes protobuf body from standard input and prints its JSON form.
//!
//! `cargo run -q -p kox-proto --example decode < body.bin`

use std::io::Read;

fn main() {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("reading standard input: {e}");
        std::process::exit(2);
    }
    match kox_proto::decode_object(&body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
